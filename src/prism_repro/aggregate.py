"""Many runs' metrics parquets -> one experiment table (one row per run)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from prism_repro.io import write_parquet


def _command(args: argparse.Namespace) -> None:
    frames = [pd.read_parquet(p) for p in args.inputs]
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "experiment", args.experiment)
    write_parquet(table, args.out)


def register(sub) -> None:
    p = sub.add_parser("aggregate", help="concatenate per-run metrics into one experiment parquet")
    p.add_argument("--experiment", required=True)
    p.add_argument("--in", dest="inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_command)
