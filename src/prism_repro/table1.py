"""Table 1 (tuned weight decay against PRISM) from aggregated metrics, beside the paper's numbers.

Pure functions over data frames; ``tables`` writes it, ``claims`` checks the paper's claims on it.
"""

from __future__ import annotations

import logging
from importlib import resources

import pandas as pd

from prism_repro import registry

log = logging.getLogger("prism_repro.table1")
# backbone names as the paper's Table 1 (published/table1.csv) spells them
BACKBONE_NAMES = {"mf": "MF", "nlmf": "NonLinearMF", "lightgcn": "LightGCN"}
LOSS_NAMES = {name: entry.label for name, entry in registry.LOSSES.items()}
METHOD_OF_EXPERIMENT = {"table1_wd": "tuned_wd", "table1_prism": "prism"}


def published(name: str) -> pd.DataFrame:
    with resources.files("prism_repro.published").joinpath(f"{name}.csv").open() as handle:
        return pd.read_csv(handle)


def percent_diff(prism: float, wd: float) -> float:
    """The paper's % Diff: (PRISM - tuned WD) / PRISM * 100."""
    return (prism - wd) / prism * 100.0 if prism else float("nan")


def table1(metrics: pd.DataFrame) -> pd.DataFrame:
    """Test NDCG@20 mean and std over seeds, tuned weight decay vs PRISM, beside the paper's.

    Long format: one row per (backbone, loss, dataset, method) plus a ``pct_diff`` row per cell
    triple with (PRISM - WD) / PRISM * 100 for ours and the paper's.
    """
    frame = metrics[metrics["experiment"].isin(METHOD_OF_EXPERIMENT)].copy()
    frame["method"] = frame["experiment"].map(METHOD_OF_EXPERIMENT)
    diverged = frame["diverged"].astype(bool)
    if diverged.any():
        log.warning("table1: leaving out %d diverged run(s)", int(diverged.sum()))
    frame = frame[~diverged]
    frame["backbone"] = frame["backbone"].map(BACKBONE_NAMES)
    frame["loss"] = frame["loss"].map(LOSS_NAMES)
    # runs of several variants (paper text, released code): one row per variant, each beside
    # the paper's number
    by_variant = ["variant"] if "variant" in frame and frame["variant"].nunique() > 1 else []
    cell_keys = ["backbone", "loss", "dataset", *by_variant]
    keys = ["backbone", "loss", "dataset", "method", *by_variant]
    ours = (
        frame.groupby(keys, sort=False)
        .agg(
            ndcg20_mean=("test_ndcg", "mean"),
            ndcg20_std=("test_ndcg", lambda s: s.std(ddof=1) if len(s) > 1 else 0.0),
            seeds=("seed", "nunique"),
            lr=("lr", "first"),
            weight_decay=("weight_decay", "first"),
            gamma=("gamma", "first"),
            best_epoch=("best_epoch", "mean"),
        )
        .reset_index()
    )
    paper = published("table1").rename(
        columns={"ndcg20_mean": "paper_mean", "ndcg20_std": "paper_std"}
    )
    table = ours.merge(paper, on=["backbone", "loss", "dataset", "method"], how="left")
    table["diff"] = table["ndcg20_mean"] - table["paper_mean"]
    pct = []
    for cell_key, cell in table.groupby(cell_keys, sort=False):
        by = cell.set_index("method")
        if {"prism", "tuned_wd"} <= set(by.index):
            pct.append(
                {
                    **dict(zip(cell_keys, cell_key)),
                    "method": "pct_diff",
                    "ndcg20_mean": percent_diff(
                        by.at["prism", "ndcg20_mean"], by.at["tuned_wd", "ndcg20_mean"]
                    ),
                    "paper_mean": percent_diff(
                        by.at["prism", "paper_mean"], by.at["tuned_wd", "paper_mean"]
                    ),
                }
            )
    if pct:
        pct = pd.DataFrame(pct)
        pct["diff"] = pct["ndcg20_mean"] - pct["paper_mean"]
        table = pd.concat([table, pct], ignore_index=True)
    order = {"tuned_wd": 0, "prism": 1, "pct_diff": 2}
    table = table.sort_values(
        ["backbone", "loss", "dataset", *by_variant, "method"],
        key=lambda s: s.map(order) if s.name == "method" else s,
    )
    return table.reset_index(drop=True)
