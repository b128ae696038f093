"""Time the theory's Monte-Carlo simulation (``prism_repro.simulate``) as a preset runs it.

Run: ``python benchmarks/bench_simulate.py [--preset tiny] [--sample-steps 3]``.
Builds the preset's power-law graph (config ``theory``), runs every scenario and batch fraction
with the preset's settings on one thread and prints the wall time, the process CPU time and the
mean milliseconds per step. With ``--sample-steps N`` it instead times N steps of each scenario at
each batch fraction (for presets too large to run whole here, e.g. ``paper``) and extrapolates to
the preset's step count. Prints the CPU model. No assertions: numbers only.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from prism_repro.config import resolve_config
from prism_repro.simulate import power_law_graph, simulate

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--sample-steps", type=int, default=0, help="time N steps and extrapolate")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import yaml

    config = resolve_config(
        yaml.safe_load((ROOT / "config.yaml").read_text()),
        ROOT / "workflow/schemas/config.schema.yaml",
        {"preset": args.preset},
    )
    t = config["theory"]
    torch.set_num_threads(args.threads)
    g = t["graph"]
    start = time.perf_counter()
    graph = power_law_graph(
        g["users"], g["items"], g["interactions"], g["zipf_exponent"], g["seed"]
    )
    print(f"cpu: {cpu_model()}, torch threads {args.threads}, preset {args.preset}")
    print(
        f"graph: {graph.num_users} users, {graph.num_items} items, {graph.num_edges} interactions,"
        f" built in {time.perf_counter() - start:.2f} s"
    )
    steps = args.sample_steps or t["steps"]
    kw = dict(
        lr=t["lr"],
        weight_decay=t["weight_decay"],
        dim=t["dim"],
        cos_sq=t["cos_sq"],
        negatives=t["negatives"],
        bins=t["degree_bins"],
        seed=t["seed"],
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    total_steps = 0
    for scenario in t["scenarios"]:
        w, c = time.perf_counter(), time.process_time()
        for fraction in t["batch_fractions"]:
            simulate(graph, scenario, fraction, steps=max(steps, 2), **kw)
            total_steps += max(steps, 2)
        ms = (time.perf_counter() - w) / (max(steps, 2) * len(t["batch_fractions"])) * 1e3
        print(
            f"{scenario:16s} {ms:8.1f} ms/step (wall), "
            f"{(time.process_time() - c) / (max(steps, 2) * len(t['batch_fractions'])) * 1e3:8.1f}"
            " ms/step (CPU)"
        )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"total: {total_steps} steps, {wall:.1f} s wall, {cpu:.1f} s CPU")
    if args.sample_steps:
        full = t["steps"] * len(t["scenarios"]) * len(t["batch_fractions"])
        print(
            f"extrapolated to the preset's {full} steps: {wall / total_steps * full / 3600:.2f} h"
            f" wall ({cpu / total_steps * full / 3600:.2f} h CPU)"
        )


if __name__ == "__main__":
    main()
