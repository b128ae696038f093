"""The real Gowalla files as a download mirror: local directory, HTTP on 127.0.0.1, and the workflow.

They live beside the project (``<repo>/../shared/data/gowalla``), never in it; a user's fresh clone
has none, so these tests skip there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prism_repro.data.download import fetch
from prism_repro.data.preprocess import preprocess
from prism_repro.data.stats import table2

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PAPER_ROW = {"users": 29858, "items": 40981, "interactions": 1027370, "density_percent": 0.08}

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def mirror() -> Path:
    if not (SHARED_DATA / "gowalla" / "train.txt").exists():
        pytest.skip(
            f"real Gowalla files not found at {SHARED_DATA}/gowalla (only present beside the project's CI)"
        )
    return SHARED_DATA


@pytest.fixture(scope="module")
def gowalla_spec() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["Gowalla"]


def assert_paper_row(interactions: Path) -> None:
    row = table2(["Gowalla"], [interactions]).iloc[0]
    for col, value in PAPER_ROW.items():
        assert row[col] == value, col
        assert row[f"{col}_paper"] == value, col
        assert row[f"{col}_diff"] == 0, col


def test_local_mirror_gives_the_papers_table2_row(mirror, gowalla_spec, tmp_path):
    raw = tmp_path / "raw"
    for name, checksum in gowalla_spec["files"].items():
        # the public source is never reached: the mirror has both files
        fetch(
            "https://unreachable.invalid/data/gowalla", raw / name, checksum, str(mirror), retries=1
        )
    out = tmp_path / "interactions.parquet"
    meta = preprocess("lightgcn", [raw / "train.txt", raw / "test.txt"], out)
    assert meta == {"num_users": 29858, "num_items": 40981}
    assert_paper_row(out)


@pytest.fixture
def http_mirror(mirror):
    """``python -m http.server`` on 127.0.0.1 (a free port) serving the shared data folder."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(mirror),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = (
            proc.stdout.readline()
        )  # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        match = re.search(r"port (\d+)", line)
        assert match, f"http.server did not start: {line!r}"
        yield proc, f"http://127.0.0.1:{match[1]}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_http_mirror_end_to_end(http_mirror, gowalla_spec, tmp_path):
    server, url = http_mirror
    raw = tmp_path / "raw"
    env = dict(
        os.environ, http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )  # loopback bypasses it
    for name, checksum in gowalla_spec["files"].items():
        cmd = [
            sys.executable,
            "-m",
            "prism_repro",
            "download",
            "--url",
            gowalla_spec["url"],
            "--checksum",
            checksum,
        ]
        cmd += ["--mirror", url, "--out", str(raw / name), "--retries", "2", "--timeout", "30"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"verified {checksum} {url}/gowalla/{name}" in proc.stderr
    server.terminate()
    requests = server.communicate(timeout=10)[1]
    assert '"GET /gowalla/train.txt HTTP/1.1" 200' in requests
    assert '"GET /gowalla/test.txt HTTP/1.1" 200' in requests
    out = tmp_path / "interactions.parquet"
    preprocess("lightgcn", [raw / "train.txt", raw / "test.txt"], out)
    assert_paper_row(out)


def test_http_mirror_with_a_wrong_checksum_leaves_nothing(http_mirror, tmp_path):
    _, url = http_mirror
    wrong = "sha256:" + "0" * 64
    out = tmp_path / "raw" / "train.txt"
    cmd = [
        sys.executable,
        "-m",
        "prism_repro",
        "download",
        "--url",
        "https://unreachable.invalid/data/gowalla",
    ]
    cmd += ["--checksum", wrong, "--mirror", url, "--out", str(out), "--retries", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: checksum mismatch for {url}/gowalla/train.txt: expected {wrong}, "
        "got sha256:7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62"
    )
    assert list(out.parent.iterdir()) == []


@pytest.mark.slow
def test_workflow_table2_with_the_mirror(mirror, tmp_path):
    """`snakemake --config mirror=...` builds Table 2 of a Gowalla-only preset; the row is the paper's."""
    for name in ["Snakefile", "config.yaml", "workflow", "profiles", "envs"]:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name)
        elif src.exists():
            shutil.copy2(src, tmp_path / name)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    experiments = {
        name: dict(exp, datasets=["Gowalla"]) for name, exp in config["experiments"].items()
    }
    extra = {
        "presets": {**config.get("presets", {}), "gowalla_check": {"experiments": experiments}}
    }
    (tmp_path / "gowalla_check.yaml").write_text(yaml.safe_dump(extra))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    def snakemake(*args: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "2",
            "--configfile",
            "config.yaml",
            "gowalla_check.yaml",
        ]
        return subprocess.run([*cmd, *args], cwd=tmp_path, env=env, capture_output=True, text=True)

    target = "results/gowalla_check/tables/table2.csv"
    start = time.perf_counter()
    proc = snakemake("--config", f"mirror={mirror}", "preset=gowalla_check", "--", target)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert time.perf_counter() - start < 300
    frame = pd.read_csv(tmp_path / target)
    assert frame["dataset"].tolist() == ["Gowalla"]
    row = frame.iloc[0]
    for col, value in PAPER_ROW.items():
        assert (row[col], row[f"{col}_paper"], row[f"{col}_diff"]) == (value, value, 0), col
    assert (
        "| Gowalla | 29,858 | 29,858 | 0 | 40,981 | 40,981 | 0 | 1,027,370 | 1,027,370 | 0 | 0.08 | 0.08 | 0 |"
        in (tmp_path / "results/gowalla_check/tables/table2.md").read_text()
    )
    assert sorted(p.name for p in (tmp_path / "resources/raw/Gowalla").iterdir()) == [
        "test.txt",
        "train.txt",
    ]
    # the mirror is where, not what: building again without it has nothing to do
    again = snakemake("-n", "--config", "preset=gowalla_check", "--", target)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
