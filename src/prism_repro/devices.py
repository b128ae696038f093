"""A GPU slot pool: which GPU a training job runs on, and how many runs share one.

Snakemake's ``--resources gpu=G`` limits how many training jobs run at once but does not tell a
job which GPU is its own; every job that resolves ``cuda`` would take device 0. Here each job
takes a *slot* before it touches a GPU: ``runs_per_gpu`` slots per visible device, one lock file
per slot in a lock folder, held with ``fcntl.flock`` for the life of the process. No two live
processes hold the same slot; a process that dies in any way (``kill -9`` included) has its
locks released by the kernel, so a crashed job never leaves a slot taken. The lock files stay
(empty of meaning once unlocked) and hold the last holder's pid and run for humans.

A job takes the free slot on the device with the fewest runs (lowest index on ties), so G jobs
spread over G devices before any device gets a second run. When every slot is held, the job
waits (polling) until one is freed.

Devices are named by their GPU UUID where torch reports one, else by their entry in
``CUDA_VISIBLE_DEVICES`` (else their index), so jobs that see different GPUs under the same
index (SLURM jobs on one node, each with ``CUDA_VISIBLE_DEVICES=0``) never share a lock.

Simulated devices for tests and CPU-only machines: ``PRISM_FAKE_GPUS=N`` makes the pool see N
devices ``fake0`` ... ``fake<N-1>``; jobs take slots exactly as on a GPU machine but compute on
the CPU.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("prism_repro.devices")

FAKE_GPUS_ENV = "PRISM_FAKE_GPUS"
# what a run records when it took no slot (it ran on the CPU)
NO_SLOT = {"gpu_device": None, "gpu_slot": None, "runs_per_gpu": None, "gpu_simulated": False}
LOCK_DIR_ENV = "PRISM_GPU_LOCK_DIR"


def default_lock_dir() -> Path:
    """Node-local, per user: ``$PRISM_GPU_LOCK_DIR`` or ``<tmp>/prism-repro-gpu-slots-<uid>``."""
    if os.environ.get(LOCK_DIR_ENV):
        return Path(os.environ[LOCK_DIR_ENV])
    return Path(tempfile.gettempdir()) / f"prism-repro-gpu-slots-{os.getuid()}"


def fake_gpu_count() -> int:
    """Simulated devices from ``PRISM_FAKE_GPUS`` (0 when unset)."""
    raw = os.environ.get(FAKE_GPUS_ENV, "").strip()
    if not raw:
        return 0
    try:
        count = int(raw)
    except ValueError:
        raise ValueError(f"{FAKE_GPUS_ENV}={raw!r} must be a whole number of devices") from None
    if count < 0:
        raise ValueError(f"{FAKE_GPUS_ENV}={raw!r} must be >= 0")
    return count


@dataclass(frozen=True)
class Device:
    index: int  # torch's index among the visible devices (cuda:<index>); -1 for a fake device
    name: str  # stable id: GPU UUID, CUDA_VISIBLE_DEVICES entry, index, or fake<i>

    @property
    def fake(self) -> bool:
        return self.index < 0


def visible_devices() -> list[Device]:
    """The devices jobs may take: simulated ones if ``PRISM_FAKE_GPUS`` is set, else CUDA's."""
    fake = fake_gpu_count()
    if fake:
        return [Device(-1, f"fake{i}") for i in range(fake)]
    import torch

    if not torch.cuda.is_available():
        return []
    listed = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e]
    devices = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        name = str(uuid) if uuid else (listed[i] if i < len(listed) else str(i))
        devices.append(Device(i, name))
    return devices


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass
class Slot:
    """A held slot: the lock stays held until ``release`` or the process ends."""

    device: Device
    slot: int
    runs_per_gpu: int
    path: Path
    fd: int | None

    @property
    def torch_device(self) -> str:
        """What the engine should compute on: ``cuda:<i>``, or ``cpu`` for a simulated device."""
        return "cpu" if self.device.fake else f"cuda:{self.device.index}"

    @property
    def label(self) -> str:
        return f"{self.device.name}/{self.slot}"

    def provenance(self) -> dict:
        return {
            "gpu_device": self.device.name,
            "gpu_slot": self.slot,
            "runs_per_gpu": self.runs_per_gpu,
            "gpu_simulated": self.device.fake,
        }

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class SlotPool:
    """``runs_per_gpu`` slots on each of ``devices``, as lock files under ``lock_dir``."""

    def __init__(self, devices: list[Device], runs_per_gpu: int = 1, lock_dir: Path | None = None):
        if runs_per_gpu < 1:
            raise ValueError(f"runs_per_gpu must be >= 1, got {runs_per_gpu}")
        if not devices:
            raise ValueError("no GPU is visible: nothing to take a slot on")
        self.devices = devices
        self.runs_per_gpu = runs_per_gpu
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()

    def path(self, device: Device, slot: int) -> Path:
        return self.lock_dir / f"gpu-{_safe(device.name)}.slot{slot}.lock"

    def _try_lock(self, path: Path) -> int | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        return fd

    def try_acquire(self, holder: str = "") -> Slot | None:
        """A free slot on the least-used device, or None when all are held (never waits)."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        free: dict[int, list[tuple[int, int]]] = {}  # device position -> [(slot, fd)]
        for d, device in enumerate(self.devices):
            for s in range(self.runs_per_gpu):
                fd = self._try_lock(self.path(device, s))
                if fd is not None:
                    free.setdefault(d, []).append((s, fd))
        if not free:
            return None
        # most free slots = fewest runs on it; ties: lowest device, lowest slot
        best = max(free, key=lambda d: (len(free[d]), -d))
        slot, fd = free[best][0]
        for d, held in free.items():
            for s, other in held:
                if (d, s) != (best, slot):
                    fcntl.flock(other, fcntl.LOCK_UN)
                    os.close(other)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} {holder}\n".encode(), 0)
        device = self.devices[best]
        return Slot(device, slot, self.runs_per_gpu, self.path(device, slot), fd)

    def acquire(self, holder: str = "", timeout: float | None = None, poll: float = 0.5) -> Slot:
        """Wait for a free slot (``timeout`` seconds at most; None: as long as it takes)."""
        start = time.monotonic()
        waiting_logged = False
        while True:
            slot = self.try_acquire(holder)
            if slot is not None:
                if waiting_logged:
                    log.info("got GPU slot %s after %.1fs", slot.label, time.monotonic() - start)
                return slot
            if not waiting_logged:
                log.info(
                    "all %d GPU slots (%d devices x %d runs each) are held; waiting (locks in %s)",
                    len(self.devices) * self.runs_per_gpu,
                    len(self.devices),
                    self.runs_per_gpu,
                    self.lock_dir,
                )
                waiting_logged = True
            if timeout is not None and time.monotonic() - start >= timeout:
                raise TimeoutError(
                    f"no free GPU slot within {timeout:.0f}s (locks in {self.lock_dir})"
                )
            time.sleep(poll * (0.5 + random.random()))


def positive_int(text: str) -> int:
    """argparse type of --runs-per-gpu."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def wants_gpu(device: str) -> bool:
    """Whether a job asking for ``device`` (auto/cpu/cuda) takes a slot here: ``cuda``
    always; ``auto`` when a GPU (or a simulated one) is visible; ``cpu`` never."""
    if device == "cpu":
        return False
    if device == "cuda" or fake_gpu_count():
        return True
    import torch

    return torch.cuda.is_available()


def acquire_for(
    device: str,
    runs_per_gpu: int = 1,
    lock_dir: Path | None = None,
    holder: str = "",
    timeout: float | None = None,
) -> Slot | None:
    """The slot a training job should run on, or None when it runs on the CPU."""
    if not wants_gpu(device):
        return None
    devices = visible_devices()
    if not devices:
        raise RuntimeError("device 'cuda' requested but no GPU is visible")
    slot = SlotPool(devices, runs_per_gpu, lock_dir).acquire(holder, timeout)
    if not slot.device.fake:
        import torch

        torch.cuda.set_device(slot.device.index)
    log.info(
        "GPU slot %s (device %s, %d runs per GPU, %d devices)%s",
        slot.label,
        slot.torch_device,
        runs_per_gpu,
        len(devices),
        " [simulated]" if slot.device.fake else "",
    )
    return slot
