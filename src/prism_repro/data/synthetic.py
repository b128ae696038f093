"""A small synthetic dataset with Zipf-like item popularity and latent preferences.

Big enough that a model learns (users share latent tastes) and that popularity effects show
(a few items take most interactions), small enough for CI. Written in the LightGCN text format
(``user item item ...`` per line) so it goes through exactly the parser and split the real
datasets go through.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prism_repro.io import write_text

PREFERENCE_STRENGTH = 4.0  # scale of taste affinities against log popularity (a few nats)


def generate(
    users: int,
    items: int,
    interactions_per_user: int,
    zipf_exponent: float,
    latent_dim: int,
    seed: int,
    preference_strength: float = PREFERENCE_STRENGTH,
) -> list[np.ndarray]:
    """Per user, a sorted array of distinct item ids.

    Choices follow softmax(log popularity + affinity): with affinities much weaker than the
    popularity spread only magnitude-based (popularity) ranking pays, and angle-only losses such as
    DirectAU barely beat random; at 4 both popularity and taste carry signal, as in real data.
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** zipf_exponent
    item_order = rng.permutation(items)  # popular items are not simply the low ids
    log_pop = np.empty(items)
    log_pop[item_order] = np.log(popularity / popularity.sum())
    user_taste = rng.normal(size=(users, latent_dim))
    item_taste = rng.normal(size=(items, latent_dim))
    affinity = preference_strength * user_taste @ item_taste.T / np.sqrt(latent_dim)
    counts = np.clip(rng.poisson(interactions_per_user, size=users), 3, items // 2)
    baskets = []
    for u in range(users):
        # Gumbel top-k: a draw without replacement from softmax(log popularity + affinity)
        keys = log_pop + affinity[u] + rng.gumbel(size=items)
        baskets.append(np.sort(np.argpartition(-keys, counts[u])[: counts[u]]))
    return baskets


def to_lightgcn_text(baskets: list[np.ndarray]) -> str:
    return "".join(f"{u} {' '.join(map(str, b))}\n" for u, b in enumerate(baskets))


def _command(args: argparse.Namespace) -> None:
    baskets = generate(
        args.users,
        args.items,
        args.interactions_per_user,
        args.zipf_exponent,
        args.latent_dim,
        args.seed,
    )
    write_text(to_lightgcn_text(baskets), args.out_train)
    write_text("", args.out_test)


def register(sub) -> None:
    p = sub.add_parser("synthetic", help="generate the synthetic dataset in LightGCN text format")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--interactions-per-user", type=int, required=True)
    p.add_argument("--zipf-exponent", type=float, required=True)
    p.add_argument("--latent-dim", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out-train", type=Path, required=True)
    p.add_argument("--out-test", type=Path, required=True)
    p.set_defaults(func=_command)
