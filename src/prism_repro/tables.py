"""Tables from aggregated metrics (parquet in; CSV, Markdown and LaTeX out), beside the paper's.

The paper's published numbers ship with the package (``prism_repro/published/``), so a clone
compares against them with no other file.
"""

from __future__ import annotations

import argparse
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from prism_repro.io import write_text

log = logging.getLogger("prism_repro.tables")
BACKBONE_NAMES = {"mf": "MF", "nlmf": "NonLinearMF", "lightgcn": "LightGCN"}
LOSS_NAMES = {"bpr": "BPR", "ssm": "SSM", "directau": "DirectAU", "mawu": "MAWU"}
METHOD_OF_EXPERIMENT = {"table1_wd": "tuned_wd", "table1_prism": "prism"}
RUN_COLUMNS = [
    "experiment",
    "dataset",
    "run",
    "backbone",
    "loss",
    "decay",
    "weight_decay",
    "init",
    "alpha",
    "gamma",
    "lr",
    "seed",
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "diverged",
    "val_ndcg",
    "test_ndcg",
    "test_ndcg_popular",
    "test_ndcg_neutral",
    "test_ndcg_unpopular",
    "train_seconds",
]


def published(name: str) -> pd.DataFrame:
    with resources.files("prism_repro.published").joinpath(f"{name}.csv").open() as handle:
        return pd.read_csv(handle)


def percent_diff(prism: float, wd: float) -> float:
    """The paper's % Diff: (PRISM - tuned WD) / PRISM * 100."""
    return (prism - wd) / prism * 100.0 if prism else float("nan")


def runs_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, run): settings, early stopping and test NDCG by popularity."""
    return metrics[RUN_COLUMNS].sort_values(["experiment", "dataset", "run"]).reset_index(drop=True)


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
    keys = ["backbone", "loss", "dataset", "method"]
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
    table = ours.merge(paper, on=keys, how="left")
    table["diff"] = table["ndcg20_mean"] - table["paper_mean"]
    pct = []
    for (backbone, loss, dataset), cell in table.groupby(
        ["backbone", "loss", "dataset"], sort=False
    ):
        by = cell.set_index("method")
        if {"prism", "tuned_wd"} <= set(by.index):
            pct.append(
                {
                    "backbone": backbone,
                    "loss": loss,
                    "dataset": dataset,
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
        ["backbone", "loss", "dataset", "method"],
        key=lambda s: s.map(order) if s.name == "method" else s,
    )
    return table.reset_index(drop=True)


# Figure 9's methods, in its legend order.
DEBIAS_METHODS = ("BPR", "DirectAU", "PRISM + DirectAU", "ReSN", "IPL", "MACR")
DEBIAS_REGULARISERS = {"resn": "ReSN", "ipl": "IPL"}


def debias_method(metrics: pd.DataFrame) -> pd.Series:
    """Figure 9's method of each run (NaN for runs that are none of them).

    A debiasing regulariser (column ``regulariser``) names the method whatever its loss; MACR
    is its loss; DirectAU runs with PRISM initialisation are "PRISM + DirectAU".
    """
    reg = metrics["regulariser"] if "regulariser" in metrics else pd.Series(None, metrics.index)
    loss, init = metrics["loss"], metrics["init"]
    method = pd.Series(np.nan, index=metrics.index, dtype=object)
    method[(loss == "bpr") & (init == "xavier")] = "BPR"
    method[(loss == "directau") & (init == "xavier")] = "DirectAU"
    method[(loss == "directau") & (init == "prism")] = "PRISM + DirectAU"
    method[loss == "macr"] = "MACR"
    for key, name in DEBIAS_REGULARISERS.items():
        method[reg == key] = name
    return method


def debias_points(metrics: pd.DataFrame) -> pd.DataFrame:
    """Figure 9's points: per (dataset, method), the setting with the best mean validation NDCG
    (PRISM's alpha, and any other axis left open, chosen on validation), with the mean and std over
    its seeds of test NDCG@k and of the unpopular/popular test NDCG ratio.

    A setting is a run id without its seed. Diverged runs are left out; a run whose popular NDCG
    is 0 has no ratio (NaN, left out of the ratio's mean).
    """
    columns = ["dataset", "method", "setting", "seeds", "val_ndcg", "ratio", "ratio_std"]
    columns += ["ndcg", "ndcg_std"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    runs = metrics[~metrics["diverged"].astype(bool)].copy()
    runs["method"] = debias_method(runs)
    runs = runs.dropna(subset=["method"])
    if runs.empty:
        return pd.DataFrame(columns=columns)
    runs["setting"] = runs["run"].str.replace(r"_s[0-9]+$", "", regex=True)
    popular = runs["test_ndcg_popular"].where(runs["test_ndcg_popular"] > 0)
    runs["ratio"] = runs["test_ndcg_unpopular"] / popular
    stats = (
        runs.groupby(["dataset", "method", "setting"])
        .agg(
            seeds=("run", "size"),
            val_ndcg=("val_ndcg", "mean"),
            ratio=("ratio", "mean"),
            ratio_std=("ratio", "std"),
            ndcg=("test_ndcg", "mean"),
            ndcg_std=("test_ndcg", "std"),
        )
        .reset_index()
    )
    stats = stats.dropna(subset=["val_ndcg"])
    best = stats.loc[stats.groupby(["dataset", "method"])["val_ndcg"].idxmax()]
    order = {m: i for i, m in enumerate(DEBIAS_METHODS)}
    best = best.assign(_order=best["method"].map(order)).sort_values(["dataset", "_order"])
    return best[columns].reset_index(drop=True)


def _cell(mean, std) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if pd.notna(std) else f"{mean:.2f} %"


def table1_display(table: pd.DataFrame) -> pd.DataFrame:
    """Wide view: rows backbone/loss/method, one column per dataset, "ours (paper)"."""
    rows = []
    for (backbone, loss, method), part in table.groupby(["backbone", "loss", "method"], sort=False):
        row = {"backbone": backbone, "loss": loss, "method": method}
        for r in part.itertuples():
            if method == "pct_diff":
                row[r.dataset] = (
                    f"{r.ndcg20_mean:+.2f} % ({r.paper_mean:+.2f} %)"
                    if pd.notna(r.paper_mean)
                    else f"{r.ndcg20_mean:+.2f} %"
                )
            else:
                row[r.dataset] = (
                    f"{_cell(r.ndcg20_mean, r.ndcg20_std)} ({_cell(r.paper_mean, r.paper_std)})"
                )
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(
    table: pd.DataFrame,
    csv: Path,
    md: Path,
    tex: Path,
    title: str,
    display: pd.DataFrame | None = None,
) -> None:
    shown = table if display is None else display
    write_text(table.to_csv(index=False), csv)
    write_text(f"# {title}\n\n" + shown.to_markdown(index=False, floatfmt=".4g") + "\n", md)
    latex = shown.to_latex(index=False, float_format="%.4g", caption=title, escape=True)
    write_text(latex, tex)


TABLES = {
    "runs": (
        runs_table,
        None,
        "Every final training run: settings, early stopping and test NDCG@20",
    ),
    "table1": (
        table1,
        table1_display,
        "Table 1: test NDCG@20, tuned weight decay vs PRISM (alpha 1, no decay); ours (paper)",
    ),
}


def _command(args: argparse.Namespace) -> None:
    metrics = pd.concat([pd.read_parquet(p) for p in args.metrics], ignore_index=True)
    if args.table == "claims":
        from prism_repro.claims import claims_table

        norms = (
            pd.concat([pd.read_parquet(p) for p in args.norms], ignore_index=True)
            if args.norms
            else pd.DataFrame()
        )
        write_table(
            claims_table(metrics, norms),
            args.out_csv,
            args.out_md,
            args.out_tex,
            "Headline claims: ours against the paper's",
        )
        return
    build, display, title = TABLES[args.table]
    table = build(metrics)
    write_table(
        table, args.out_csv, args.out_md, args.out_tex, title, display(table) if display else None
    )


def register(sub) -> None:
    p = sub.add_parser("table", help="build one table from aggregated metrics")
    p.add_argument("table", choices=[*sorted(TABLES), "claims"])
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument("--norms", type=Path, nargs="*", default=[])
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)
    p.add_argument("--out-tex", type=Path, required=True)
    p.set_defaults(func=_command)
