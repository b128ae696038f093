"""benchmarks/gpu_check.sh's own controls, in its CPU form: a lease is short and may be cut, so
the script must run a chosen subset, bound each step, and keep going past a failure."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def gpu_check(tmp_path, *args):
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", str(SCRIPT), "--cpu-smoke", "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def summary(tmp_path):
    return (tmp_path / "out" / "summary.txt").read_text()


def test_unknown_step_is_refused_by_name(tmp_path):
    done = gpu_check(tmp_path, "--steps", "bench,warp-drive")
    assert done.returncode == 2
    assert "unknown step 'warp-drive'" in done.stderr


def test_only_the_chosen_steps_run_and_machine_always_does(tmp_path):
    done = gpu_check(tmp_path, "--steps", "cost")
    assert done.returncode == 0, done.stderr
    text = summary(tmp_path)
    assert "== machine:" in text and "(exit 0)" in text
    assert "== cost:" in text and "total:" in text
    for skipped in ("cuda-tests", "bench", "sharing", "tiny"):
        assert f"== {skipped}: skipped (--steps)" in text
    assert "memory: host" in text


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_step_past_its_timeout_fails_and_keep_going_runs_the_rest(tmp_path, keep_going):
    # one second is too little for the steps that import torch (machine, cost): the first to
    # run out stops the script, unless --keep-going
    args = ["--steps", "cost,tiny", "--step-timeout", "1"] + (
        ["--keep-going"] if keep_going else []
    )
    done = gpu_check(tmp_path, *args)
    assert done.returncode != 0
    text = summary(tmp_path)
    assert "ran past --step-timeout 1 s" in text
    if keep_going:
        assert "== tiny:" in text and "failed:" in text
    else:
        assert "== tiny:" not in text
