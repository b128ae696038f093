import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Unit tests train tiny models, where OpenMP's idle threads spinning for work cost more than the
# work: an MF + DirectAU epoch of the tiny data took 5 s of CPU with two spinning threads on a
# busy 2-core machine, 0.08 s with passive waiting and 0.04 s with one thread. Set before torch
# loads its OpenMP runtime; inherited by the Snakemake jobs the workflow tests start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

# one intra-op thread; tests of bit-for-bit determinism ask for `default_threads`
DEFAULT_THREADS = torch.get_num_threads()
torch.set_num_threads(1)
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
def default_threads():
    """The machine's default intra-op thread count for one test (determinism tests: a sum whose
    order depends on the threads would show there)."""
    torch.set_num_threads(DEFAULT_THREADS)
    yield DEFAULT_THREADS
    torch.set_num_threads(1)


@pytest.fixture
def workflow_copy(tmp_path):
    return copy_workflow(tmp_path)


# one run's metrics: the single-target build (test_workflow) asks for it before anything else
SINGLE_TARGET = "results/tiny/runs/Synthetic/mf_bpr_full0.0001_xavier_lr0.01_s123/metrics.parquet"


@dataclass(frozen=True)
class TinyBuild:
    root: Path
    single_target_dry_run: str  # stdout of the dry run for SINGLE_TARGET in the fresh copy
    after_single_target: frozenset  # files under results/ once SINGLE_TARGET alone was built


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory) -> TinyBuild:
    """The tiny preset built once, end to end, for the tests that inspect its outputs.

    From a fresh copy it first builds one run's metrics alone (what the single-target test
    checks), then everything else: those jobs are the full build's first ones, so the single
    target costs one Snakemake start instead of a second build."""
    root = copy_workflow(tmp_path_factory.mktemp("tiny"))
    dry = snakemake(root, "-n", "--cores", "1", "--config", "preset=tiny", "--", SINGLE_TARGET)
    snakemake(root, "--cores", "2", "--config", "preset=tiny", "--", SINGLE_TARGET)
    files = frozenset(
        p.relative_to(root).as_posix() for p in (root / "results").rglob("*") if p.is_file()
    )
    snakemake(root, "--cores", "2", "--config", "preset=tiny")
    return TinyBuild(root, dry.stdout, files)


@pytest.fixture(scope="session")
def tiny_run(tiny_build) -> Path:
    return tiny_build.root


def shared_data_or_skip() -> Path:
    if not (SHARED_DATA / "gowalla" / "train.txt").exists():
        pytest.skip(
            f"real Gowalla files not found at {SHARED_DATA} (only present beside the project's CI)"
        )
    return SHARED_DATA
