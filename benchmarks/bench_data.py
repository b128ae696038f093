"""Time the data stage on the real Gowalla files: fetch (from a mirror), preprocess, split, degrees.

Run: ``python benchmarks/bench_data.py [--mirror ../shared/data] [--seed 123] [--workdir DIR]``.
The mirror must hold ``gowalla/train.txt`` and ``gowalla/test.txt`` (the LightGCN release files; see
docs/datasets.md); by default ``<repo>/../shared/data``. Every stage runs through the same
``python -m prism_repro`` command the Snakemake rule runs, twice:

* in process (imports paid once, up front): wall seconds of the work itself;
* as one subprocess per stage, as Snakemake runs them: wall seconds including interpreter start and
  imports, and the peak resident set size (VmHWM) of that process.

Target: preprocess + split + degrees under 10 s on 2 cores. No assertions: numbers only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from prism_repro import cli
from prism_repro.data.download import fetch
from prism_repro.data.stats import dataset_stats

REPO = Path(__file__).resolve().parents[1]


def stage_commands(raw: Path, data: Path, seed: int) -> dict[str, list[str]]:
    inter, split, deg = (
        data / "interactions.parquet",
        data / f"split_s{seed}.parquet",
        data / f"degrees_s{seed}.parquet",
    )
    return {
        "preprocess": [
            "preprocess",
            "--source",
            "lightgcn",
            "--in",
            str(raw / "train.txt"),
            str(raw / "test.txt"),
            "--out",
            str(inter),
        ],
        "split": [
            "split",
            "--in",
            str(inter),
            "--out",
            str(split),
            "--seed",
            str(seed),
            "--fractions",
            "0.8",
            "0.1",
            "0.1",
        ],
        "degrees": ["degrees", "--in", str(split), "--out", str(deg), "--strata-degrees", "train"],
    }


def in_process(commands: dict[str, list[str]]) -> dict[str, float]:
    """Wall seconds per stage, imports paid once before timing."""
    cli.build_parser()  # import every command module before timing
    results = {}
    for name, argv in commands.items():
        start = time.perf_counter()
        if cli.main(argv) != 0:
            raise SystemExit(f"{name} failed")
        results[name] = time.perf_counter() - start
    return results


# Runs one command and writes the child's own peak RSS (VmHWM: per address space, so not inflated by
# the parent's pages the way ru_maxrss is across fork + exec).
_CHILD = """
import atexit, runpy, sys
hwm_file = sys.argv[1]
def _report():
    with open('/proc/self/status') as f:
        hwm = next(line.split()[1] for line in f if line.startswith('VmHWM:'))
    with open(hwm_file, 'w') as out:
        out.write(hwm)
atexit.register(_report)
sys.argv = ['prism_repro', *sys.argv[2:]]
runpy.run_module('prism_repro', run_name='__main__')
"""


def as_subprocesses(
    commands: dict[str, list[str]], scratch: Path
) -> dict[str, tuple[float, float]]:
    """Wall seconds (interpreter start and imports included) and peak RSS MiB per stage."""
    results = {}
    for name, argv in commands.items():
        hwm_file = scratch / f"{name}.hwm"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(hwm_file), *argv], stdout=subprocess.DEVNULL
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed")
        results[name] = (seconds, int(hwm_file.read_text()) / 2**10)  # VmHWM is in kB
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument(
        "--workdir", type=Path, help="keep outputs here (default: a temporary directory)"
    )
    args = parser.parse_args()
    if not (Path(args.mirror) / "gowalla" / "train.txt").exists() and "://" not in args.mirror:
        raise SystemExit(f"no Gowalla files under {args.mirror}/gowalla (pass --mirror)")

    spec = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["Gowalla"]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        raw = root / "raw" / "Gowalla"
        start = time.perf_counter()
        for name, checksum in spec["files"].items():
            fetch(spec["url"], raw / name, checksum, args.mirror, retries=1)
        fetch_s = time.perf_counter() - start

        inproc = in_process(stage_commands(raw, root / "inproc", args.seed))
        subproc = as_subprocesses(
            {
                "(startup)": ["preprocess", "--help"],
                **stage_commands(raw, root / "subproc", args.seed),
            },
            root,
        )
        stats = dataset_stats(root / "inproc" / "interactions.parquet")

    print(f"Gowalla, {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    print(f"fetch from the mirror + checksums: {fetch_s:.2f} s")
    print(f"{'stage':<12}{'compute s':>11}{'command s':>11}{'peak RSS MiB':>14}")
    for stage in ("preprocess", "split", "degrees"):
        t_sub, rss = subproc[stage]
        print(f"{stage:<12}{inproc[stage]:>11.2f}{t_sub:>11.2f}{rss:>14.1f}")
    t_help, rss_help = subproc.pop("(startup)")
    print(
        f"{'(startup)':<12}{'':>11}{t_help:>11.2f}{rss_help:>14.1f}   `preprocess --help`: imports only"
    )
    total_in, total_sub = sum(inproc.values()), sum(t for t, _ in subproc.values())
    print(f"{'total':<12}{total_in:>11.2f}{total_sub:>11.2f}   (target: under 10 s)")
    print(
        "compute: in process, imports paid before timing; command: `python -m prism_repro <stage>`"
    )
    print(
        "as a Snakemake job runs it (interpreter start and imports included); peak RSS: of that command"
    )
    print(f"Table 2 row: {stats}")


if __name__ == "__main__":
    main()
