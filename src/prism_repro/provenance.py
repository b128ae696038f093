"""Where a result came from: package versions and the git commit, stored with every run."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
    import numpy
    import torch

    import prism_repro
    from prism_repro import uniformity

    try:  # the installed version, without importing PyG (slow; only LightGCN needs it)
        pyg = importlib.metadata.version("torch_geometric")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        pyg = "absent"
    commit = git_commit(Path(__file__).parent)
    return {
        "version_prism_repro": prism_repro.__version__,
        "version_torch": str(torch.__version__),
        "version_torch_geometric": str(pyg),
        "version_numpy": str(numpy.__version__),
        "version_python": platform.python_version(),
        "git_commit": commit,
        "cpu_model": cpu_model(),
        # float32 uniformity tiles under oneDNN's bf16 permission (see prism_repro.uniformity);
        # reduced precision is never used by default, the flag tells machines apart
        "uniformity_onednn_bf16": bool(uniformity._FAST_BF16),
    }


# what decides a run's numbers; a checkout whose changes lie elsewhere (the record's own
# reference/*/runs.csv growing as runs finish, the generated docs) is not "-dirty"
CODE_PATHS = ("src", "workflow", "Snakefile", "config.yaml", "pyproject.toml")


def git_commit(where: Path) -> str:
    """The checkout's commit, with "-dirty" only when its code (CODE_PATHS) has changes."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=where)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return "unknown"
        # ":/" anchors each path at the checkout's top, wherever `where` lies inside it
        paths = [f":/{path}" for path in CODE_PATHS]
        changes = git("status", "--porcelain", "--untracked-files=no", "--", *paths).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if changes else "")


def cpu_model() -> str:
    """The CPU's model name (results from different machines can be told apart)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
