"""The final runs of one experiment -> three tables: metrics (a row per run), epochs, norms."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from prism_repro.io import write_parquet


def concat(paths: list[Path], experiment: str) -> pd.DataFrame:
    table = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    table.insert(0, "experiment", experiment)
    return table


def _command(args: argparse.Namespace) -> None:
    if not (len(args.metrics) == len(args.epochs) == len(args.norms)):
        raise SystemExit("aggregate: --metrics, --epochs and --norms need one file per run each")
    write_parquet(concat(args.metrics, args.experiment), args.out_metrics)
    write_parquet(concat(args.epochs, args.experiment), args.out_epochs)
    write_parquet(concat(args.norms, args.experiment), args.out_norms)


def register(sub) -> None:
    p = sub.add_parser("aggregate", help="concatenate per-run results into experiment tables")
    p.add_argument("--experiment", required=True)
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument("--epochs", type=Path, nargs="+", required=True)
    p.add_argument("--norms", type=Path, nargs="+", required=True)
    p.add_argument("--out-metrics", type=Path, required=True)
    p.add_argument("--out-epochs", type=Path, required=True)
    p.add_argument("--out-norms", type=Path, required=True)
    p.set_defaults(func=_command)
