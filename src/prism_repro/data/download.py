"""Download one raw dataset file, verified against a pinned checksum, from a mirror or the source.

Every file is fetched as ``<url>/<name>`` where ``url`` is the dataset's base URL in config.yaml.
A mirror (``--config mirror=...``: a local directory, a ``file://`` or an ``http(s)://`` base URL)
is tried first, with the layout ``<mirror>/<last component of url>/<name>``, i.e.

* LightGCN sets: ``<mirror>/gowalla/train.txt``, ``<mirror>/yelp2018/test.txt``,
  ``<mirror>/amazon-book/train.txt`` (the LightGCN repository's ``data/<dir>/`` layout);
* MovieLens-1M: ``<mirror>/movielens/ml-1m.zip`` (GroupLens' ``datasets/movielens/`` layout).

A file missing from the mirror falls back to the public source. Bytes go to a temporary file beside
the output and are renamed onto it only once the checksum matches; a mismatch (from either source)
deletes them and fails with one line naming the URL and both hashes.

Checksum kinds: ``sha256:<hex>``, ``md5:<hex>`` (where no sha256 is published) and
``gitsha1:<hex>``, the git blob SHA-1 (``git hash-object FILE``) for files of which nothing else is
published.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from prism_repro.errors import UserError
from prism_repro.io import atomic_path

log = logging.getLogger(__name__)

CHECKSUM_KINDS = {"sha256": 64, "md5": 32, "gitsha1": 40}
CHUNK = 1 << 20
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF_S = 2.0
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Checksum:
    kind: str
    hexdigest: str

    @classmethod
    def parse(cls, text: str) -> Checksum:
        kind, _, hexdigest = text.partition(":")
        hexdigest = hexdigest.lower()
        if (
            kind not in CHECKSUM_KINDS
            or len(hexdigest) != CHECKSUM_KINDS[kind]
            or not _is_hex(hexdigest)
        ):
            kinds = ", ".join(f"{k}:<{n} hex digits>" for k, n in CHECKSUM_KINDS.items())
            raise UserError(f"bad checksum {text!r}; expected one of {kinds}")
        return cls(kind, hexdigest)

    def __str__(self) -> str:
        return f"{self.kind}:{self.hexdigest}"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _new_hash(kind: str, size: int | None):
    """A hashlib object for a checksum kind; a git blob hash starts with a header naming the size."""
    if kind == "gitsha1":
        return hashlib.sha1(f"blob {size}\0".encode())
    return hashlib.new(kind)


def file_checksum(path: str | os.PathLike, kind: str) -> Checksum:
    """The checksum of kind ``kind`` of a file on disk."""
    path = Path(path)
    h = _new_hash(kind, path.stat().st_size)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            h.update(chunk)
    return Checksum(kind, h.hexdigest())


# ---------------------------------------------------------------------------------------------
# Sources


def file_url(base_url: str, name: str) -> str:
    return base_url.rstrip("/") + "/" + name


def mirror_location(mirror: str, base_url: str, name: str) -> str:
    """Where ``<base_url>/<name>`` lives in a mirror: ``<mirror>/<last component of base_url>/<name>``."""
    subdir = urllib.parse.urlparse(base_url).path.rstrip("/").rsplit("/", 1)[-1]
    if "://" in mirror:
        return mirror.rstrip("/") + "/" + subdir + "/" + name
    return str(Path(mirror) / subdir / name)


class _NotFound(Exception):
    """The source does not have the file: try the next source, do not retry."""


class _Transient(Exception):
    """A network problem worth retrying."""


def _open_local(location: str) -> tuple[BinaryIO, int | None]:
    path = Path(location)
    if not path.is_file():
        raise _NotFound(f"{location}: no such file")
    return open(path, "rb"), path.stat().st_size


def _open_url(location: str, timeout: float) -> tuple[BinaryIO, int | None]:
    request = urllib.request.Request(location, headers={"User-Agent": "prism-repro"})
    host = urllib.parse.urlparse(location).hostname or ""
    # a loopback mirror never goes through a proxy
    opener = (
        urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if host in ("127.0.0.1", "localhost", "::1")
        else urllib.request.build_opener()
    )
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code in (404, 410) or (400 <= err.code < 500 and err.code not in (408, 429)):
            raise _NotFound(f"{location}: HTTP {err.code} {err.reason}") from None
        raise _Transient(f"{location}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if location.startswith("file:"):
            raise _NotFound(f"{location}: {err.reason}") from None
        raise _Transient(f"{location}: {err.reason}") from None
    except (TimeoutError, OSError, http.client.HTTPException) as err:
        raise _Transient(f"{location}: {err!r}") from None
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None


def _open(location: str, timeout: float) -> tuple[BinaryIO, int | None]:
    if "://" in location:
        return _open_url(location, timeout)
    return _open_local(location)


def _copy(location: str, tmp: Path, kind: str, timeout: float) -> Checksum:
    """Copy one source into ``tmp``, hashing on the way; raises _NotFound or _Transient."""
    handle, size = _open(location, timeout)
    # a git blob hash needs the size first: without a Content-Length, hash the file once written
    hasher = None if kind == "gitsha1" and size is None else _new_hash(kind, size)
    with handle, open(tmp, "wb") as out:
        written = _stream(handle, out, location, hasher)
    if size is not None and written != size:
        raise _Transient(f"{location}: got {written} of {size} bytes")
    return Checksum(kind, hasher.hexdigest()) if hasher else file_checksum(tmp, kind)


def _stream(handle: BinaryIO, out: BinaryIO, location: str, hasher) -> int:
    written = 0
    next_report = 50 * CHUNK
    try:
        while chunk := handle.read(CHUNK):
            out.write(chunk)
            if hasher is not None:
                hasher.update(chunk)
            written += len(chunk)
            if written >= next_report:
                log.info("%s: %d MiB", location, written >> 20)
                next_report += 50 * CHUNK
    except (TimeoutError, OSError, http.client.HTTPException) as err:
        raise _Transient(f"{location}: {err!r}") from None
    return written


def fetch(
    url: str,
    out: str | os.PathLike,
    checksum: str | Checksum,
    mirror: str = "",
    *,
    name: str | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Checksum:
    """Fetch ``<url>/<name>`` (``name`` defaults to the output's file name) into ``out``.

    The mirror, when given, is tried first; a file it lacks comes from the public source. Each
    source gets ``retries`` attempts with exponential backoff (``backoff_s``, then twice that, ...)
    on network errors, each attempt bounded by ``timeout_s`` of socket inactivity.
    """
    out = Path(out)
    name = name or out.name
    expected = checksum if isinstance(checksum, Checksum) else Checksum.parse(checksum)
    public = file_url(url, name)
    sources = ([mirror_location(mirror, url, name)] if mirror else []) + [public]
    problems = []
    for location in sources:
        for attempt in range(1, retries + 1):
            log.info("fetching %s (attempt %d of %d)", location, attempt, retries)
            try:
                # renamed onto `out` only if the block completes; any exception removes the bytes
                with atomic_path(out) as tmp:
                    actual = _copy(location, tmp, expected.kind, timeout_s)
                    if actual != expected:
                        raise UserError(
                            f"checksum mismatch for {location}: expected {expected}, got {actual}"
                        )
                    _make_readable(tmp)
            except _NotFound as err:
                log.info("not there: %s", err)
                problems.append(str(err))
                break
            except _Transient as err:
                log.warning("attempt %d failed: %s", attempt, err)
                if attempt == retries:
                    problems.append(f"{err} (after {retries} attempts)")
                    break
                sleep(backoff_s * 2 ** (attempt - 1))
                continue
            log.info("verified %s %s -> %s", expected, location, out)
            return actual
    raise UserError(f"could not download {name}: {'; '.join(problems)}")


def _make_readable(path: Path) -> None:
    """Give the temporary file (created 0600) the permissions of an ordinary new file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def dataset_files(name: str, datasets: Mapping[str, Mapping]) -> dict[str, str]:
    """``{file name: checksum}`` of a downloaded dataset as defined in config ``datasets``."""
    if name not in datasets:
        raise UserError(f"unknown dataset {name!r}; defined datasets: {', '.join(datasets)}")
    spec = datasets[name]
    if spec.get("source") == "synthetic":
        raise UserError(f"dataset {name!r} is synthetic: nothing to download")
    if not spec.get("url") or not spec.get("files"):
        raise UserError(
            f"dataset {name!r} needs 'url' and 'files' (file name -> checksum) to be downloaded"
        )
    return dict(spec["files"])


def _command(args: argparse.Namespace) -> None:
    if args.retries < 1:
        raise UserError("--retries must be at least 1")
    fetch(
        args.url,
        args.out,
        args.checksum,
        args.mirror,
        name=args.name,
        retries=args.retries,
        backoff_s=args.backoff,
        timeout_s=args.timeout,
    )


def register(sub) -> None:
    p = sub.add_parser("download", help="download one raw dataset file and verify its checksum")
    p.add_argument(
        "--url", required=True, help="base URL of the dataset's files at the public source"
    )
    p.add_argument("--name", help="file name under --url (default: the name of --out)")
    p.add_argument("--checksum", required=True, help="sha256:<hex>, md5:<hex> or gitsha1:<hex>")
    p.add_argument(
        "--mirror", default="", help="local directory, file:// or http(s):// base URL tried first"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="attempts per source")
    p.add_argument(
        "--backoff",
        type=float,
        default=DEFAULT_BACKOFF_S,
        help="seconds before the 2nd attempt (doubles)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="socket timeout per attempt, seconds",
    )
    p.set_defaults(func=_command)
