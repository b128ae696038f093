import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
WORKFLOW_FILES = ["Snakefile", "config.yaml", "workflow", "profiles", "envs"]


def copy_workflow(dest: Path) -> Path:
    """A private copy of the workflow (the package itself is installed), so runs don't clash."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the snakemake of this interpreter's environment inside ``workdir``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


@pytest.fixture
def workflow_copy(tmp_path):
    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny preset built once, end to end, for the tests that inspect its outputs."""
    root = copy_workflow(tmp_path_factory.mktemp("tiny"))
    snakemake(root, "--cores", "2", "--config", "preset=tiny")
    return root


def shared_data_or_skip() -> Path:
    if not (SHARED_DATA / "gowalla" / "train.txt").exists():
        pytest.skip(
            f"real Gowalla files not found at {SHARED_DATA} (only present beside the project's CI)"
        )
    return SHARED_DATA
