"""MACR's validation: every c of its grid scored from one matrix product, against one full
ranking pass per c (the path of models without an offset family).

On Gowalla-sized tensors (29,858 users, 40,981 items, d = 64, ~830k known pairs masked, ~100k
held out; random, seeded) it times the 13 c of MACR's default grid both ways, checks that both
give the same NDCG@20 for each c, and prints the seconds, their ratio, and the shared cost in
units of one full pass (``debias.validation_passes``'s MACR value). No assertions beyond the
equality: numbers only.

Run: ``python benchmarks/bench_macr_validation.py [--repeats 2] [--threads N]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from prism_repro.debias import MACR_C_GRID
from prism_repro.provenance import cpu_model
from prism_repro.ranking import UserItemSets, evaluate_offset_rankings, evaluate_rankings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timings per path (fastest kept)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    num_users, num_items, dim = 29858, 40981, 64
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    users = torch.randn(num_users, dim, generator=gen)
    items = torch.randn(num_items, dim, generator=gen)
    item_sigmoid = torch.rand(num_items, generator=gen)
    known = np.unique(
        np.stack([rng.integers(0, num_users, 830_000), rng.zipf(1.5, 830_000) % num_items], 1),
        axis=0,
    )
    held = np.unique(
        np.stack([rng.integers(0, num_users, 103_000), rng.integers(0, num_items, 103_000)], 1),
        axis=0,
    )
    sets = (
        UserItemSets(held, num_users, "cpu"),
        [UserItemSets(known, num_users, "cpu")],
        torch.arange(num_items) % 3,
        20,
    )
    grid = torch.tensor(MACR_C_GRID)
    scaled_items = items * item_sigmoid[:, None]

    def one_pass_per_c():
        # MACR's ranking rows for one c: [u, -c] . [i s_i, s_i] (the per-user factor dropped)
        return [
            evaluate_rankings(
                torch.cat([users, torch.full((num_users, 1), -float(c))], 1),
                torch.cat([scaled_items, item_sigmoid[:, None]], 1),
                *sets,
                strata=False,
            )["dot"]
            for c in grid
        ]

    def shared_product():
        return evaluate_offset_rankings(
            users, scaled_items, -grid[:, None] * item_sigmoid, *sets, strata=False
        )

    def fastest(fn):
        best, out = float("inf"), None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - start)
        return best, out

    looped_s, looped = fastest(one_pass_per_c)
    shared_s, shared = fastest(shared_product)
    gap = max(abs(a["ndcg"] - b["ndcg"]) for a, b in zip(looped, shared))
    per_pass = looped_s / len(grid)
    print(
        f"CPU: {cpu_model() or platform.processor()}, {args.threads} threads, torch {torch.__version__}"
    )
    print(
        f"{len(grid)} c values, Gowalla-sized: one pass per c {looped_s:.2f} s ({per_pass:.2f} s a pass)"
    )
    print(
        f"shared product: {shared_s:.2f} s = {shared_s / per_pass:.1f} passes; {looped_s / shared_s:.2f}x faster"
    )
    print(f"largest NDCG@20 difference between the paths over the c values: {gap:.2e}")


if __name__ == "__main__":
    main()
