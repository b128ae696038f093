"""Seeded global 80/10/10 split of interactions, train degrees and popularity strata.

As the paper and its released code do (PyG ``RandomLinkSplit``): a uniform random split over all
interactions, not per user. An explicit generator makes it identical on every machine.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prism_repro.data.interactions import read_interactions
from prism_repro.io import read_parquet_metadata, write_parquet

SPLITS = ("train", "val", "test")
STRATA = ("popular", "neutral", "unpopular")
STRATA_FRACTIONS = (0.05, 0.15, 0.80)


def split_codes(
    num_interactions: int, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """0/1/2 (train/val/test) per interaction; sizes are round(n * fraction) for val and test."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    n_val = int(round(num_interactions * fractions[1]))
    n_test = int(round(num_interactions * fractions[2]))
    perm = np.random.default_rng(seed).permutation(num_interactions)
    codes = np.zeros(num_interactions, dtype=np.int8)
    codes[perm[num_interactions - n_val - n_test : num_interactions - n_test]] = 1
    codes[perm[num_interactions - n_test :]] = 2
    return codes


def popularity_strata(degrees: np.ndarray) -> np.ndarray:
    """0/1/2 (popular/neutral/unpopular): top 5 %, next 15 %, bottom 80 % of items by degree.

    Ties are broken by item id (lower id ranks higher), so the strata are deterministic.
    Group sizes are round(5 % of items) and round(20 % of items) - round(5 %).
    """
    n = len(degrees)
    order = np.lexsort((np.arange(n), -degrees))  # degree descending, then id ascending
    n_pop = int(round(n * STRATA_FRACTIONS[0]))
    n_top20 = int(round(n * (STRATA_FRACTIONS[0] + STRATA_FRACTIONS[1])))
    strata = np.full(n, 2, dtype=np.int8)
    strata[order[:n_top20]] = 1
    strata[order[:n_pop]] = 0
    return strata


@dataclass
class SplitData:
    """Everything a run needs about its data, as numpy arrays."""

    num_users: int
    num_items: int
    train: np.ndarray  # (n, 2) user, item
    val: np.ndarray
    test: np.ndarray
    user_degree: np.ndarray  # train degrees
    item_degree: np.ndarray
    item_stratum: np.ndarray  # 0 popular, 1 neutral, 2 unpopular


def split_in_memory(
    pairs: np.ndarray,
    num_users: int,
    num_items: int,
    seed: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> SplitData:
    """The same split, train degrees and strata as the rules make, without files (tests, benchmarks)."""
    codes = split_codes(len(pairs), fractions, seed)
    train = pairs[codes == 0]
    item_degree = np.bincount(train[:, 1], minlength=num_items)
    return SplitData(
        num_users,
        num_items,
        train,
        pairs[codes == 1],
        pairs[codes == 2],
        np.bincount(train[:, 0], minlength=num_users),
        item_degree,
        popularity_strata(item_degree),
    )


def load_split(split_path: Path, degrees_path: Path) -> SplitData:
    frame = pd.read_parquet(split_path)
    meta = read_parquet_metadata(split_path)
    pairs = frame[["user", "item"]].to_numpy(dtype=np.int64)
    code = frame["split"].to_numpy()
    deg = pd.read_parquet(degrees_path)
    users = deg[deg["node"] == "user"].sort_values("id")
    items = deg[deg["node"] == "item"].sort_values("id")
    return SplitData(
        num_users=meta["num_users"],
        num_items=meta["num_items"],
        train=pairs[code == 0],
        val=pairs[code == 1],
        test=pairs[code == 2],
        user_degree=users["degree"].to_numpy(np.int64),
        item_degree=items["degree"].to_numpy(np.int64),
        item_stratum=items["stratum"].to_numpy(np.int8),
    )


def _split_command(args: argparse.Namespace) -> None:
    frame, meta = read_interactions(args.inp)
    codes = split_codes(len(frame), tuple(args.fractions), args.seed)
    out = frame.assign(split=codes)
    write_parquet(
        out, args.out, metadata={**meta, "seed": args.seed, "fractions": list(args.fractions)}
    )


def _degrees_command(args: argparse.Namespace) -> None:
    frame = pd.read_parquet(args.inp)
    meta = read_parquet_metadata(args.inp)
    train = frame[frame["split"] == 0]
    user_deg = np.bincount(train["user"], minlength=meta["num_users"])
    item_deg = np.bincount(train["item"], minlength=meta["num_items"])
    strata_deg = (
        item_deg
        if args.strata_degrees == "train"
        else np.bincount(frame["item"], minlength=meta["num_items"])
    )
    table = pd.concat(
        [
            pd.DataFrame(
                {
                    "node": "user",
                    "id": np.arange(meta["num_users"]),
                    "degree": user_deg,
                    "stratum": -1,
                }
            ),
            pd.DataFrame(
                {
                    "node": "item",
                    "id": np.arange(meta["num_items"]),
                    "degree": item_deg,
                    "stratum": popularity_strata(strata_deg),
                }
            ),
        ],
        ignore_index=True,
    ).astype({"id": "int64", "degree": "int64", "stratum": "int8"})
    write_parquet(table, args.out, metadata={**meta, "strata_degrees": args.strata_degrees})


def register(sub) -> None:
    p = sub.add_parser("split", help="seeded global random train/val/test split")
    p.add_argument("--in", dest="inp", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--fractions", type=float, nargs=3, default=[0.8, 0.1, 0.1])
    p.set_defaults(func=_split_command)
    p = sub.add_parser("degrees", help="train degrees and item popularity strata")
    p.add_argument("--in", dest="inp", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--strata-degrees", choices=["train", "all"], default="train")
    p.set_defaults(func=_degrees_command)
