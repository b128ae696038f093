import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
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


def snakemake(
    workdir: Path, *args: str, check: bool = True, started=None
) -> subprocess.CompletedProcess:
    """Run the snakemake of this interpreter's environment inside ``workdir`` (``started``: a
    callable handed the process as it starts, so a background build can be stopped)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", *args]
    with subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as popen:
        if started:
            started(popen)
        stdout, stderr = popen.communicate()
    proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
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


class TinyBuilder:
    """Builds the tiny preset in a background thread, so the build's Snakemake jobs use the core
    that the single-threaded unit tests leave idle on a 2-core machine.

    From a fresh copy it first builds one run's metrics alone (what the single-target test
    checks), then everything else: those jobs are the full build's first ones, so the single
    target costs one Snakemake start instead of a second build."""

    def __init__(self, root: Path):
        self.root, self.result, self.error, self.popen = root, None, None, None
        self.stopped, self.seconds = False, None
        self.thread = threading.Thread(target=self._build, name="tiny-build", daemon=True)

    def _started(self, popen):
        self.popen = popen
        if self.stopped:
            popen.terminate()

    def _build(self):
        t0 = time.perf_counter()
        try:
            root, tiny = copy_workflow(self.root), ("--config", "preset=tiny")
            sm = functools.partial(snakemake, root, started=self._started)
            dry = sm("-n", "--cores", "1", *tiny, "--", SINGLE_TARGET)
            sm("--cores", "2", *tiny, "--", SINGLE_TARGET)
            files = frozenset(
                p.relative_to(root).as_posix() for p in (root / "results").rglob("*") if p.is_file()
            )
            sm("--cores", "2", *tiny)
            self.result = TinyBuild(root, dry.stdout, files)
        except BaseException as err:  # raised again in the tests that use the build
            self.error = err
        self.seconds = time.perf_counter() - t0

    def wait(self) -> TinyBuild:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self):
        self.stopped = True
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
        self.thread.join(timeout=60)


TINY_FIXTURES = {"tiny_build", "tiny_run"}
_tiny_builder: TinyBuilder | None = None


def _start_tiny_build() -> TinyBuilder:
    global _tiny_builder
    if _tiny_builder is None:
        root = Path(tempfile.mkdtemp(prefix="prism-repro-tiny-"))
        _tiny_builder = TinyBuilder(root)
        _tiny_builder.thread.start()
    return _tiny_builder


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: only when a selected test needs it
def pytest_collection_modifyitems(session, config, items):
    """Start the tiny build as soon as the tests are known and run the tests that read it last,
    so that it builds while the others run."""
    needs = [item for item in items if TINY_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if not needs or config.option.collectonly:
        return
    _start_tiny_build()
    items[:] = [item for item in items if item not in needs] + needs


def pytest_terminal_summary(terminalreporter):
    if _tiny_builder is not None and _tiny_builder.seconds is not None:
        terminalreporter.write_line(
            f"tiny preset build (in the background): {_tiny_builder.seconds:.0f} s"
        )


def pytest_sessionfinish(session, exitstatus):
    if _tiny_builder is None:
        return
    _tiny_builder.stop()
    if exitstatus == 0:  # kept for a look when something failed
        shutil.rmtree(_tiny_builder.root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_build() -> TinyBuild:
    """The tiny preset built once, end to end, for the tests that inspect its outputs."""
    return _start_tiny_build().wait()


@pytest.fixture(scope="session")
def tiny_run(tiny_build) -> Path:
    return tiny_build.root


def shared_data_or_skip() -> Path:
    if not (SHARED_DATA / "gowalla" / "train.txt").exists():
        pytest.skip(
            f"real Gowalla files not found at {SHARED_DATA} (only present beside the project's CI)"
        )
    return SHARED_DATA
