"""The GPU slot pool on simulated devices: distinct slots across processes, a killed holder's
slot freed by the kernel, k runs per device, least-used device first."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from prism_repro.devices import (
    FAKE_GPUS_ENV,
    Device,
    SlotPool,
    acquire_for,
    visible_devices,
)

# a holder process: takes a slot, prints it, keeps it until its stdin closes (or it is killed)
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from prism_repro.devices import SlotPool, visible_devices
    slot = SlotPool(visible_devices(), int(sys.argv[2]), Path(sys.argv[1])).acquire(
        "test", timeout=float(sys.argv[3]), poll=0.05)
    print(slot.label, flush=True)
    sys.stdin.read()
    """
)


def fake_env(n: int) -> dict:
    return dict(os.environ, **{FAKE_GPUS_ENV: str(n)})


def start_holder(lock_dir, devices: int, runs_per_gpu: int, timeout: float = 20.0):
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(runs_per_gpu), str(timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=fake_env(devices),
    )


def stop(proc) -> None:
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=20)


def fake_pool(tmp_path, devices: int, runs_per_gpu: int = 1) -> SlotPool:
    return SlotPool(
        [Device(-1, f"fake{i}") for i in range(devices)], runs_per_gpu, tmp_path / "locks"
    )


def test_concurrent_processes_get_distinct_slots_one_per_device(tmp_path):
    holders = [start_holder(tmp_path / "locks", devices=3, runs_per_gpu=1) for _ in range(3)]
    try:
        labels = [h.stdout.readline().strip() for h in holders]
        assert sorted(labels) == ["fake0/0", "fake1/0", "fake2/0"]
        # all three held: a fourth job finds nothing free and waits
        assert fake_pool(tmp_path, 3).try_acquire() is None
    finally:
        for h in holders:
            stop(h)
    with fake_pool(tmp_path, 3).acquire(timeout=5) as slot:  # released on exit: free again
        assert slot.label == "fake0/0"


def test_a_killed_holders_slot_is_freed(tmp_path):
    holder = start_holder(tmp_path / "locks", devices=1, runs_per_gpu=1)
    try:
        assert holder.stdout.readline().strip() == "fake0/0"
        pool = fake_pool(tmp_path, 1)
        assert pool.try_acquire() is None
        with pytest.raises(TimeoutError):
            pool.acquire(timeout=0.2, poll=0.05)
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up code runs: the kernel drops the lock
        holder.wait(timeout=20)
        with pool.acquire(timeout=10, poll=0.05) as slot:
            assert slot.label == "fake0/0"
            assert (tmp_path / "locks").exists()
    finally:
        stop(holder)


def test_k_runs_share_one_device_and_the_next_waits_for_a_free_slot(tmp_path):
    holders = [start_holder(tmp_path / "locks", devices=1, runs_per_gpu=3) for _ in range(3)]
    try:
        labels = [h.stdout.readline().strip() for h in holders]
        assert sorted(labels) == ["fake0/0", "fake0/1", "fake0/2"]
        waiting = start_holder(tmp_path / "locks", devices=1, runs_per_gpu=3)
        assert fake_pool(tmp_path, 1, 3).try_acquire() is None
        released = labels.index("fake0/1")
        stop(holders[released])  # one run ends: the waiting job takes exactly its slot
        assert waiting.stdout.readline().strip() == "fake0/1"
        holders.append(waiting)
    finally:
        for h in holders:
            stop(h)


def test_jobs_spread_over_devices_before_doubling_up(tmp_path):
    pool = fake_pool(tmp_path, 2, runs_per_gpu=2)
    first, second, third = pool.acquire(), pool.acquire(), pool.acquire()
    assert [first.label, second.label, third.label] == ["fake0/0", "fake1/0", "fake0/1"]
    first.release()
    fourth = pool.acquire()  # fake0 now runs one, fake1 one: the lower index
    assert fourth.label == "fake0/0"
    for slot in (second, third, fourth):
        slot.release()


def test_simulated_devices_and_cpu_requests(tmp_path, monkeypatch):
    monkeypatch.setenv(FAKE_GPUS_ENV, "2")
    assert [d.name for d in visible_devices()] == ["fake0", "fake1"]
    assert acquire_for("cpu", 1, tmp_path) is None  # an explicit cpu run takes no slot
    slot = acquire_for("auto", 2, tmp_path, holder="run")
    assert slot.torch_device == "cpu" and slot.provenance() == {
        "gpu_device": "fake0",
        "gpu_slot": 0,
        "runs_per_gpu": 2,
        "gpu_simulated": True,
    }
    assert "pid" in slot.path.read_text() and "run" in slot.path.read_text()
    slot.release()
    monkeypatch.setenv(FAKE_GPUS_ENV, "two")
    with pytest.raises(ValueError, match=FAKE_GPUS_ENV):
        visible_devices()


def test_bad_pools_are_refused(tmp_path):
    with pytest.raises(ValueError, match="runs_per_gpu"):
        fake_pool(tmp_path, 1, runs_per_gpu=0)
    with pytest.raises(ValueError, match="no GPU"):
        SlotPool([], 1, tmp_path)
