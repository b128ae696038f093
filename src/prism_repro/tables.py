"""Tables from aggregated metrics (parquet in, CSV + Markdown out)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from prism_repro.io import write_text

RUN_COLUMNS = ["dataset", "run", "backbone", "loss", "decay", "weight_decay", "init", "alpha", "lr", "seed",
               "best_epoch", "epochs_run", "stop_reason", "val_ndcg", "test_ndcg", "test_ndcg_popular",
               "test_ndcg_neutral", "test_ndcg_unpopular", "train_seconds"]


def runs_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per run with its settings, stopping and test NDCG overall and by popularity."""
    table = metrics.drop_duplicates("run" if "dataset" not in metrics else ["dataset", "run"])
    return table[RUN_COLUMNS].sort_values(["dataset", "run"]).reset_index(drop=True)


def write_table(table: pd.DataFrame, csv: Path, md: Path, title: str) -> None:
    write_text(table.to_csv(index=False), csv)
    write_text(f"# {title}\n\n" + table.to_markdown(index=False, floatfmt=".4g") + "\n", md)


TABLES = {"runs": (runs_table, "Every training run: settings, early stopping and test NDCG@20")}


def _command(args: argparse.Namespace) -> None:
    metrics = pd.concat([pd.read_parquet(p) for p in args.inputs], ignore_index=True)
    build, title = TABLES[args.table]
    write_table(build(metrics), args.out_csv, args.out_md, title)


def register(sub) -> None:
    p = sub.add_parser("table", help="build one table from aggregated metrics")
    p.add_argument("table", choices=sorted(TABLES))
    p.add_argument("--in", dest="inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out-csv", type=Path, required=True)
    p.add_argument("--out-md", type=Path, required=True)
    p.set_defaults(func=_command)
