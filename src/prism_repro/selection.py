"""Tuning selection: per group of fixed settings, the tuned axes with the best validation NDCG.

As the paper does (Appendix B): a grid over the tuned axes (learning rate, weight decay, DirectAU's
gamma) is trained with the first seed; the setting with the highest validation NDCG@20 is then
trained with every seed and reported as test mean +- std. Diverged runs never win.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from prism_repro import registry
from prism_repro.grid import spec_from_settings, tunable_axes
from prism_repro.io import write_parquet

log = logging.getLogger("prism_repro.selection")
TUNABLE = tunable_axes()
# a run's settings: everything but the seed (loss grid parameters from the registry)
SETTING_COLUMNS = (
    "dataset",
    "variant",
    "backbone",
    "loss",
    "decay",
    "weight_decay",
    "init",
    "alpha",
    *registry.loss_params(),
    "lr",
)


def group_columns(tune: list[str]) -> list[str]:
    """Settings held fixed within a selection group (decay mode follows weight decay when tuned)."""
    drop = set(tune) | ({"decay"} if "weight_decay" in tune else set())
    return [c for c in SETTING_COLUMNS if c not in drop]


def select_settings(candidates: pd.DataFrame, tune: list[str]) -> pd.DataFrame:
    """One row per group: the candidate with the best validation NDCG (ties: first in run order)."""
    unknown = set(tune) - set(TUNABLE)
    if unknown:
        raise ValueError(f"cannot tune {sorted(unknown)}; tunable: {TUNABLE}")
    keys = group_columns(tune)
    candidates = candidates.reindex(
        columns=list(dict.fromkeys([*candidates.columns, *SETTING_COLUMNS]))
    )
    rows = []
    for key, group in candidates.sort_values("run").groupby(keys, sort=True, dropna=False):
        valid = group[~group["diverged"].astype(bool) & group["val_ndcg"].notna()]
        if valid.empty:
            log.warning(
                "no usable candidate for %s (all %d diverged)", dict(zip(keys, key)), len(group)
            )
            continue
        best = valid.loc[valid["val_ndcg"].idxmax()]
        rows.append(
            {
                **best[list(SETTING_COLUMNS)].to_dict(),
                "selected_run": best["run"],
                "val_ndcg": best["val_ndcg"],
                "candidates": len(group),
                "diverged_candidates": int(group["diverged"].astype(bool).sum()),
            }
        )
    return pd.DataFrame(rows)


def final_runs(selected: pd.DataFrame, seeds: list[int]) -> pd.DataFrame:
    """The selected settings crossed with every seed: (dataset, run) rows."""
    out = []
    for row in selected.to_dict("records"):
        for seed in seeds:
            spec = spec_from_settings(row, seed)
            out.append(
                {
                    "dataset": row["dataset"],
                    "run": spec.run_id,
                    "seed": seed,
                    "selected_run": row["selected_run"],
                }
            )
    return pd.DataFrame(out, columns=["dataset", "run", "seed", "selected_run"])


def _command(args: argparse.Namespace) -> None:
    candidates = pd.concat([pd.read_parquet(p) for p in args.inputs], ignore_index=True)
    selected = select_settings(candidates, args.tune)
    runs = final_runs(selected, args.seeds)
    table = runs.merge(selected, on=["dataset", "selected_run"], how="left")
    table.insert(0, "experiment", args.experiment)
    write_parquet(table, args.out)
    log.info(
        "%s: %d groups selected from %d candidates -> %d final runs",
        args.experiment,
        len(selected),
        len(candidates),
        len(runs),
    )


def register(sub) -> None:
    p = sub.add_parser("select", help="pick tuned settings on validation NDCG; list the final runs")
    p.add_argument("--experiment", required=True)
    p.add_argument("--tune", nargs="+", required=True, choices=TUNABLE)
    p.add_argument("--seeds", nargs="+", type=int, required=True)
    p.add_argument("--in", dest="inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_command)
