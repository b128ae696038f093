"""Raw dataset files -> ``interactions.parquet`` (see ``interactions.py`` for the schema)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prism_repro.cli import UserError
from prism_repro.data.interactions import finalize_interactions, write_interactions


def parse_lightgcn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """LightGCN release format: one line per user, ``user item item ...`` (ids >= 0)."""
    users, items = [], []
    with open(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                ids = [int(f) for f in fields]
            except ValueError:
                raise UserError(f"{path}:{lineno}: non-integer id in line {line.strip()[:60]!r}") from None
            if min(ids) < 0:
                raise UserError(f"{path}:{lineno}: negative id in line {line.strip()[:60]!r}")
            users.extend([ids[0]] * (len(ids) - 1))
            items.extend(ids[1:])
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def preprocess_lightgcn(paths: list[Path], out: Path) -> dict:
    """Merge the release's train and test files (the paper re-splits them) into one table."""
    parts = [parse_lightgcn(p) for p in paths]
    users = np.concatenate([u for u, _ in parts])
    items = np.concatenate([i for _, i in parts])
    if len(users) == 0:
        raise UserError(f"no interactions in {', '.join(map(str, paths))}")
    frame, meta = finalize_interactions(users, items)
    write_interactions(frame, meta, out)
    return meta


def _command(args: argparse.Namespace) -> None:
    if args.source in ("lightgcn", "synthetic"):
        preprocess_lightgcn(args.inputs, args.out)
    else:
        raise UserError(f"unknown dataset source {args.source!r}")


def register(sub) -> None:
    p = sub.add_parser("preprocess", help="raw dataset files -> interactions.parquet")
    p.add_argument("--source", required=True)
    p.add_argument("--in", dest="inputs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_command)
