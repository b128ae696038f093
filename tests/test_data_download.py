"""Downloads: checksums, mirror precedence and layout, retries with backoff, timeouts, mismatches.

Every byte here is written by the tests; sources are local directories, file:// URLs and a
throwaway HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest

from prism_repro import cli
from prism_repro.config import resolve_config
from prism_repro.data.download import Checksum, dataset_files, fetch, file_checksum, mirror_location
from prism_repro.errors import UserError

REPO = Path(__file__).resolve().parents[1]
BASE = "https://example.invalid/LightGCN-PyTorch/master/data/toyset"
CONTENT = b"0 1 2 3\n1 2 4\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --- checksums -------------------------------------------------------------------------------


def test_checksum_kinds_match_hashlib_and_git(tmp_path):
    path = put(tmp_path, "hello.txt", b"hello\n")
    assert file_checksum(path, "sha256").hexdigest == hashlib.sha256(b"hello\n").hexdigest()
    assert file_checksum(path, "md5").hexdigest == hashlib.md5(b"hello\n").hexdigest()
    # `printf 'hello\n' | git hash-object --stdin`
    assert file_checksum(path, "gitsha1").hexdigest == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize(
    "text",
    ["sha1:" + "0" * 40, "sha256:" + "0" * 63, "md5:" + "g" * 32, "0" * 64, "gitsha1:" + "0" * 64],
)
def test_bad_checksum_strings_are_rejected(text):
    with pytest.raises(UserError, match="bad checksum"):
        Checksum.parse(text)


def test_checksum_parse_is_case_insensitive_in_hex():
    assert str(Checksum.parse("MD5:".lower() + "A" * 32)) == "md5:" + "a" * 32


# --- mirror layout and precedence ------------------------------------------------------------


def test_mirror_layout_uses_last_component_of_the_base_url():
    lightgcn = (
        "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/amazon-book"
    )
    assert mirror_location("/m", lightgcn, "train.txt") == "/m/amazon-book/train.txt"
    assert (
        mirror_location("http://h:8000/d/", lightgcn, "test.txt")
        == "http://h:8000/d/amazon-book/test.txt"
    )
    movielens = "https://files.grouplens.org/datasets/movielens"
    assert (
        mirror_location("file:///srv/mirror", movielens, "ml-1m.zip")
        == "file:///srv/mirror/movielens/ml-1m.zip"
    )


def test_local_mirror_is_tried_first(tmp_path):
    mirror, public = tmp_path / "mirror", tmp_path / "public"
    put(mirror, "toyset/train.txt", CONTENT)
    put(public, "toyset/train.txt", b"something else\n")
    out = tmp_path / "raw" / "train.txt"
    got = fetch(public.as_uri() + "/toyset", out, sha256(CONTENT), str(mirror), retries=1)
    assert out.read_bytes() == CONTENT
    assert str(got) == sha256(CONTENT)


def test_file_url_mirror_and_fallback_to_public_source(tmp_path):
    mirror, public = tmp_path / "mirror", tmp_path / "public"
    put(mirror, "toyset/train.txt", CONTENT)
    put(public, "toyset/test.txt", b"7 8\n")
    out = tmp_path / "raw"
    fetch(
        public.as_uri() + "/toyset", out / "train.txt", sha256(CONTENT), mirror.as_uri(), retries=1
    )
    # the mirror lacks test.txt: the public source serves it
    fetch(public.as_uri() + "/toyset", out / "test.txt", sha256(b"7 8\n"), str(mirror), retries=1)
    assert (out / "train.txt").read_bytes() == CONTENT
    assert (out / "test.txt").read_bytes() == b"7 8\n"


def test_relative_mirror_directory(tmp_path, monkeypatch):
    put(tmp_path / "shared", "toyset/train.txt", CONTENT)
    monkeypatch.chdir(tmp_path / "shared")
    fetch(BASE, tmp_path / "out.txt", sha256(CONTENT), ".", name="train.txt", retries=1)
    assert (tmp_path / "out.txt").read_bytes() == CONTENT


def test_downloaded_file_is_readable_by_others(tmp_path):
    put(tmp_path / "mirror", "toyset/train.txt", CONTENT)
    out = tmp_path / "raw" / "train.txt"
    fetch(BASE, out, sha256(CONTENT), str(tmp_path / "mirror"), retries=1)
    assert out.stat().st_mode & 0o044  # not the 0600 of a temporary file


# --- failures --------------------------------------------------------------------------------


def test_checksum_mismatch_deletes_the_file_and_names_both_hashes(tmp_path):
    mirror = tmp_path / "mirror"
    put(mirror, "toyset/train.txt", b"tampered\n")
    out_dir = tmp_path / "raw"
    expected = sha256(CONTENT)
    actual = sha256(b"tampered\n")
    with pytest.raises(UserError) as err:
        fetch(BASE, out_dir / "train.txt", expected, str(mirror), retries=1)
    message = str(err.value)
    assert "\n" not in message
    assert str(mirror / "toyset" / "train.txt") in message
    assert expected in message and actual in message
    assert leftovers(out_dir) == []  # neither the output nor a temporary file


def test_checksum_mismatch_on_the_command_line_is_one_line(tmp_path, capsys):
    public = tmp_path / "public"
    put(public, "toyset/train.txt", b"tampered\n")
    out = tmp_path / "raw" / "train.txt"
    md5 = "md5:" + hashlib.md5(CONTENT).hexdigest()
    url = public.as_uri() + "/toyset"
    code = cli.main(
        ["download", "--url", url, "--checksum", md5, "--out", str(out), "--retries", "1"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == (
        f"error: checksum mismatch for {url}/train.txt: expected {md5}, "
        f"got md5:{hashlib.md5(b'tampered' + bytes([10])).hexdigest()}"
    )
    assert not any("Traceback" in line for line in err)
    assert leftovers(out.parent) == []


def test_missing_everywhere_fails_with_one_line(tmp_path):
    with pytest.raises(
        UserError,
        match=r"could not download train\.txt: .*/toyset/train\.txt: no such file; file://.*/public/toyset/train\.txt: .*",
    ) as err:
        fetch(
            (tmp_path / "public").as_uri() + "/toyset",
            tmp_path / "train.txt",
            sha256(CONTENT),
            str(tmp_path),
            retries=1,
        )
    assert "\n" not in str(err.value)
    assert not (tmp_path / "train.txt").exists()


# --- HTTP: retries with backoff, timeouts, 404 fallback --------------------------------------


class _Server:
    """A local HTTP server whose handler behaviour a test scripts per request."""

    def __init__(self, respond):
        outer = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                outer.requests.append(self.path)
                respond(self, len(outer.requests))

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _send(handler, code: int, body: bytes = b"") -> None:
    handler.send_response(code)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_http_retries_with_exponential_backoff(tmp_path):
    def respond(handler, n):
        _send(handler, 503) if n <= 2 else _send(handler, 200, CONTENT)

    sleeps = []
    with _Server(respond) as server:
        out = tmp_path / "train.txt"
        fetch(BASE, out, sha256(CONTENT), server.url, retries=4, backoff_s=0.5, sleep=sleeps.append)
    assert out.read_bytes() == CONTENT
    assert sleeps == [0.5, 1.0]
    assert server.requests == ["/toyset/train.txt"] * 3


def test_http_gives_up_after_the_last_attempt(tmp_path):
    sleeps = []
    with _Server(lambda handler, n: _send(handler, 500)) as server:
        with pytest.raises(UserError, match=r"HTTP 500 .*after 3 attempts") as err:
            fetch(
                f"{server.url}/pub/toyset",
                tmp_path / "train.txt",
                sha256(CONTENT),
                retries=3,
                backoff_s=1,
                sleep=sleeps.append,
            )
    assert sleeps == [1, 2]
    assert "\n" not in str(err.value)
    assert leftovers(tmp_path) == []


def test_http_timeout_is_retried(tmp_path):
    def respond(handler, n):
        if n == 1:
            time.sleep(1.0)  # longer than the client's timeout
        _send(handler, 200, CONTENT)

    with _Server(respond) as server:
        out = tmp_path / "train.txt"
        fetch(
            BASE, out, sha256(CONTENT), server.url, retries=2, timeout_s=0.2, sleep=lambda s: None
        )
    assert out.read_bytes() == CONTENT
    assert len(server.requests) == 2


def test_truncated_http_body_is_retried(tmp_path):
    def respond(handler, n):
        if n == 1:  # promise more bytes than are sent, then close
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(CONTENT) + 10))
            handler.end_headers()
            handler.wfile.write(CONTENT)
            handler.close_connection = True
        else:
            _send(handler, 200, CONTENT)

    with _Server(respond) as server:
        out = tmp_path / "train.txt"
        fetch(BASE, out, sha256(CONTENT), server.url, retries=2, timeout_s=2, sleep=lambda s: None)
    assert out.read_bytes() == CONTENT


def test_http_mirror_404_falls_back_to_the_public_source(tmp_path):
    public = tmp_path / "public"
    put(public, "toyset/train.txt", CONTENT)
    with _Server(lambda handler, n: _send(handler, 404)) as server:
        out = tmp_path / "raw" / "train.txt"
        fetch(
            public.as_uri() + "/toyset",
            out,
            sha256(CONTENT),
            server.url,
            retries=3,
            sleep=lambda s: None,
        )
    assert out.read_bytes() == CONTENT
    assert len(server.requests) == 1  # a 404 is not retried


# --- dataset definitions ---------------------------------------------------------------------


def test_unknown_dataset_name_is_one_line_error():
    with pytest.raises(UserError, match=r"unknown dataset 'Gowala'; defined datasets: Gowalla"):
        dataset_files("Gowala", {"Gowalla": {"source": "lightgcn", "url": BASE, "files": {}}})


def test_synthetic_dataset_has_nothing_to_download():
    with pytest.raises(UserError, match="synthetic"):
        dataset_files("Synthetic", {"Synthetic": {"source": "synthetic"}})


def test_config_pins_the_files_preprocessing_needs():
    import yaml

    config = resolve_config(
        yaml.safe_load((REPO / "config.yaml").read_text()),
        REPO / "workflow/schemas/config.schema.yaml",
    )
    datasets = config["datasets"]
    expected = {
        "MovieLens1M": ["ml-1m.zip"],
        "Gowalla": ["train.txt", "test.txt"],
        "Yelp2018": ["train.txt", "test.txt"],
        "AmazonBook": ["train.txt", "test.txt"],
    }
    for name, files in expected.items():
        pinned = dataset_files(name, datasets)
        assert list(pinned) == files
        for checksum in pinned.values():
            Checksum.parse(checksum)
    assert datasets["MovieLens1M"]["url"] == "https://files.grouplens.org/datasets/movielens"
    assert config["variants"]["paper"]["movielens_min_rating"] == 3  # Table 2: ratings >= 3
    assert config["variants"]["released"]["movielens_min_rating"] == 1
    lightgcn = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/"
    assert datasets["AmazonBook"]["url"] == lightgcn + "amazon-book"
    # sha256 wherever one is published
    assert datasets["Gowalla"]["files"]["train.txt"].startswith("sha256:")
    assert datasets["Yelp2018"]["files"]["train.txt"].startswith("sha256:")
    assert datasets["AmazonBook"]["files"]["train.txt"].startswith("sha256:")
