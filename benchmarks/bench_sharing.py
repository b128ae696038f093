"""Several training runs sharing one GPU: seconds per epoch and runs per hour for k = 1, 2, 4, 8.

For each k, k worker processes each take a slot of the GPU slot pool (k slots on the first
visible GPU, the engine's ``--runs-per-gpu k``), build this engine's trainer for MF + a loss on Gowalla (from a
mirror; ``--synthetic`` for a small generated dataset), wait until all k are ready, then train
and validate ``--epochs`` epochs at the same time, timing each. Per k it prints the seconds per
epoch of one run (train + validation, the median over epochs after the first, the mean over the
k runs), the throughput of the device (runs per hour for runs of ``--run-epochs`` epochs) and
its ratio to k = 1, and each worker's peak GPU memory. With ``--seconds-out`` it writes the k = 1
numbers as rows for ``python -m prism_repro cost --seconds`` (device ``gpu`` on a GPU).

Run: ``python benchmarks/bench_sharing.py --device cuda [--k 1 2 4 8] [--epochs 3]
[--losses directau bpr] [--mirror ../shared/data]``. ``--max-batches`` shrinks epochs to a smoke
run. On a CPU machine ``PRISM_FAKE_GPUS=1 ... --device auto`` exercises the same path on a
simulated GPU (numbers then mean nothing). No assertions: numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = {"directau": 4096, "bpr": 16384}
RUN = "mf_{loss}_full1e-06_xavier_lr0.001_s123"


def run_id(loss: str) -> str:
    return RUN.format(loss="directau-g1" if loss == "directau" else loss)


def prepare(args, folder: Path) -> tuple[str, Path]:
    """The split once, as arrays the workers load (parsing Gowalla takes seconds)."""
    from prism_repro.bench import load_gowalla, synthetic_data

    if args.synthetic:
        data, name = synthetic_data(*args.synthetic_size), "Synthetic"
    else:
        if not (args.mirror / "gowalla" / "train.txt").exists():
            raise SystemExit(
                f"no gowalla/train.txt under {args.mirror} (pass --mirror or --synthetic)"
            )
        data, name = load_gowalla(args.mirror), "Gowalla"
    path = folder / "split.npz"
    np.savez(
        path,
        **{
            k: getattr(data, k)
            for k in ("train", "val", "test", "user_degree", "item_degree", "item_stratum")
        },
        shape=np.array([data.num_users, data.num_items]),
    )
    print(
        f"dataset={name} users={data.num_users} items={data.num_items} train={len(data.train)}",
        flush=True,
    )
    return name, path


def load(path: Path):
    from prism_repro.data.split import SplitData

    arrays = np.load(path)
    users, items = (int(x) for x in arrays["shape"])
    names = ("train", "val", "test", "user_degree", "item_degree", "item_stratum")
    return SplitData(num_users=users, num_items=items, **{k: arrays[k] for k in names})


def worker(args) -> None:
    """One run: take a slot, set up, report ready, wait for go, train and time epochs."""
    import torch

    from prism_repro.devices import acquire_for
    from prism_repro.runspec import RunSpec
    from prism_repro.train import EngineConfig, Trainer

    data = load(args.split)
    k = args.k[0]
    slot = acquire_for(args.device, k, args.lock_dir, holder=f"bench k={k}")
    device = slot.torch_device if slot else ("cpu" if args.device == "auto" else args.device)
    cfg = EngineConfig(dim=64, batch_size=BATCH[args.loss], device=device)
    trainer = Trainer(RunSpec.parse(run_id(args.loss)), data, cfg, args.dataset)
    if args.max_batches:
        n = args.max_batches * BATCH[args.loss]
        trainer.train_users, trainer.train_items = trainer.train_users[:n], trainer.train_items[:n]
    cuda = trainer.device.type == "cuda"
    (args.sync / f"ready-{os.getpid()}").touch()
    while not (args.sync / "go").exists():
        time.sleep(0.01)
    train_s, validate_s = [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        trainer.train_epoch()
        if cuda:
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        trainer.validate()
        if cuda:
            torch.cuda.synchronize()
        train_s.append(t1 - t0)
        validate_s.append(time.perf_counter() - t1)
    peak = torch.cuda.max_memory_allocated(trainer.device) / 2**20 if cuda else float("nan")
    print(
        json.dumps(
            {
                "slot": slot.label if slot else None,
                "device": str(trainer.device),
                "train_s": train_s,
                "validate_s": validate_s,
                "peak_gpu_mb": peak,
            }
        ),
        flush=True,
    )


def batch(args, k: int, loss: str, dataset: str, split: Path, folder: Path) -> dict:
    sync = folder / f"sync-{loss}-{k}"
    sync.mkdir()
    cmd = [sys.executable, __file__, "--worker", "--k", str(k), "--loss", loss]
    cmd += ["--split", str(split), "--dataset", dataset, "--sync", str(sync)]
    cmd += ["--lock-dir", str(folder / "locks"), "--device", args.device]
    cmd += ["--epochs", str(args.epochs)]
    if args.max_batches:
        cmd += ["--max-batches", str(args.max_batches)]
    # all k runs on one GPU: the workers see only the first visible one
    env = dict(os.environ)
    if args.device != "cpu" and not os.environ.get("PRISM_FAKE_GPUS"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
        env["CUDA_VISIBLE_DEVICES"] = visible
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(k)
    ]
    while len(list(sync.glob("ready-*"))) < k:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.05)
    t0 = time.perf_counter()
    (sync / "go").touch()
    results = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"k={k} {loss}: a worker failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - t0
    steady = slice(1, None) if args.epochs > 1 else slice(None)  # the first epoch warms up
    per_run = [
        statistics.median(r["train_s"][steady]) + statistics.median(r["validate_s"][steady])
        for r in results
    ]
    return {
        "k": k,
        "loss": loss,
        "slots": sorted(r["slot"] or "-" for r in results),
        "device": results[0]["device"],
        "train_s": statistics.mean(statistics.median(r["train_s"][steady]) for r in results),
        "validate_s": statistics.mean(statistics.median(r["validate_s"][steady]) for r in results),
        "epoch_s": statistics.mean(per_run),
        "wall_s": wall,
        "peak_gpu_mb": max(r["peak_gpu_mb"] for r in results),
    }


def describe_machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"gpu={gpu!r} cpu={cpu!r} cores={os.cpu_count()} torch={torch.__version__} device={device}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--losses", nargs="+", default=["directau", "bpr"], choices=sorted(BATCH))
    p.add_argument("--epochs", type=int, default=3, help="epochs timed per run (first: warm-up)")
    p.add_argument("--run-epochs", type=int, default=100, help="epochs of a run, for runs/hour")
    p.add_argument("--max-batches", type=int, default=None, help="smoke run: batches per epoch")
    p.add_argument("--device", default="cuda", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--mirror", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    p.add_argument("--synthetic", action="store_true", help="a generated dataset, not Gowalla")
    p.add_argument(
        "--synthetic-size", type=int, nargs=2, default=[2000, 3000], metavar=("USERS", "ITEMS")
    )
    p.add_argument("--seconds-out", type=Path, default=None, help="CSV rows for `cost --seconds`")
    # worker-only
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--loss", help=argparse.SUPPRESS)
    p.add_argument("--split", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--sync", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--lock-dir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error(
                "--device cuda: no GPU is visible (on a CPU machine: PRISM_FAKE_GPUS=1 --device auto)"
            )
    print(describe_machine(args.device), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sharing-") as tmp:
        folder = Path(tmp)
        dataset, split = prepare(args, folder)
        for loss in args.losses:
            base = None
            for k in args.k:
                r = batch(args, k, loss, dataset, split, folder)
                runs_per_hour = k * 3600 / (args.run_epochs * r["epoch_s"])
                base = base or runs_per_hour
                rows.append({**r, "runs_per_hour": runs_per_hour})
                print(
                    f"workload=mf+{loss} k={k} s_per_epoch={r['epoch_s']:.3f} "
                    f"(train {r['train_s']:.3f} + validate {r['validate_s']:.3f}) "
                    f"runs_per_hour={runs_per_hour:.1f} (runs of {args.run_epochs} epochs) "
                    f"throughput_vs_k1={runs_per_hour / base:.2f}x peak_gpu_mb={r['peak_gpu_mb']:.0f} "
                    f"slots={','.join(r['slots'])}",
                    flush=True,
                )
    if args.seconds_out:
        device = "gpu" if rows and rows[0]["device"].startswith("cuda") else "cpu"
        stamp = time.strftime("%Y-%m-%d")
        lines = ["device,dataset,backbone,loss,train_s,validate_s,source"]
        for r in rows:
            if r["k"] == 1:
                lines.append(
                    f"{device},{dataset},mf,{r['loss']},{r['train_s']:.3f},{r['validate_s']:.3f},"
                    f'"benchmarks/bench_sharing.py k=1, {stamp}"'
                )
        args.seconds_out.write_text("\n".join(lines) + "\n")
        print(f"seconds per epoch (k=1) written to {args.seconds_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
