"""Tables from aggregated metrics (parquet in; CSV, Markdown and LaTeX out), beside the paper's.

The paper's published numbers ship with the package (``prism_repro/published/``), so a clone
compares against them with no other file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from prism_repro import registry
from prism_repro.claims import claims_table
from prism_repro.io import write_text
from prism_repro.table1 import table1

__all__ = ["runs_table", "table1", "table1_display", "claims_table", "TABLES"]

log = logging.getLogger("prism_repro.tables")
RUN_COLUMNS = [
    "experiment",
    "dataset",
    "run",
    "variant",
    "backbone",
    "loss",
    "decay",
    "weight_decay",
    "init",
    "alpha",
    *registry.loss_params(),
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


def runs_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, run): settings, early stopping and test NDCG by popularity."""
    return (
        metrics.reindex(columns=RUN_COLUMNS)
        .sort_values(["experiment", "dataset", "run"])
        .reset_index(drop=True)
    )


def _cell(mean, std) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if pd.notna(std) else f"{mean:.2f} %"


def table1_display(table: pd.DataFrame) -> pd.DataFrame:
    """Wide view: rows backbone/loss/method, one column per dataset, "ours (paper)"."""
    rows = []
    keys = ["backbone", "loss", *(["variant"] if "variant" in table else []), "method"]
    for key, part in table.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        method = row["method"]
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
        norms = (
            pd.concat([pd.read_parquet(p) for p in args.norms], ignore_index=True)
            if args.norms
            else pd.DataFrame()
        )
        theory = (
            pd.concat([pd.read_parquet(p) for p in args.theory], ignore_index=True)
            if args.theory
            else None
        )
        write_table(
            claims_table(metrics, norms, theory),
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
    p.add_argument(
        "--theory", type=Path, nargs="*", default=[], help="simulate's parquet files (claims)"
    )
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)
    p.add_argument("--out-tex", type=Path, required=True)
    p.set_defaults(func=_command)
