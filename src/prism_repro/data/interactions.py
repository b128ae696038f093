"""The one interaction table every dataset becomes: ``interactions.parquet``.

Pinned schema: ``user`` int64, ``item`` int64, contiguous ids 0..n-1, no duplicate pairs, sorted by
(user, item); the parquet metadata records ``num_users`` and ``num_items``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa

from prism_repro.io import read_parquet_metadata, write_parquet

SCHEMA = pa.schema([("user", pa.int64()), ("item", pa.int64())])


def finalize_interactions(users: np.ndarray, items: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """Drop duplicate pairs and remap ids to contiguous ranges (order of first appearance by id)."""
    frame = pd.DataFrame(
        {"user": np.asarray(users, dtype=np.int64), "item": np.asarray(items, dtype=np.int64)}
    )
    frame = frame.drop_duplicates()
    user_ids, user_codes = np.unique(frame["user"].to_numpy(), return_inverse=True)
    item_ids, item_codes = np.unique(frame["item"].to_numpy(), return_inverse=True)
    frame = pd.DataFrame({"user": user_codes.astype(np.int64), "item": item_codes.astype(np.int64)})
    frame = frame.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    meta = {"num_users": int(len(user_ids)), "num_items": int(len(item_ids))}
    return frame, meta


def write_interactions(frame: pd.DataFrame, meta: dict, path: str | os.PathLike) -> None:
    write_parquet(frame[["user", "item"]], path, metadata=meta)


def read_interactions(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    frame = pd.read_parquet(path)
    return frame, read_parquet_metadata(path)
