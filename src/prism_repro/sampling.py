"""Uniform negative sampling for BPR and SSM, vectorised on the positives' device.

``batch`` mode reproduces the released code (snap-research/PRISM:train.py ``train_model``):
negatives are drawn uniformly from the distinct items of the mini-batch, with no check against
the user's positives. That is exact for MF and non-linear MF, whose ``LinkNeighborLoader`` has no
hops; for LightGCN the released pool is the items of the batch's 3-hop subgraph, which for large
batches is nearly every item, i.e. close to ``all`` mode (uniform over the catalogue). An item
of train degree d is in a batch's pool with probability 1 - (1 - |B|/|E|)^d (the paper's
Observation 1), so ``batch`` mode uses popular items as negatives more often than ``all`` does.
"""

from __future__ import annotations

import torch

__all__ = ["NEGATIVE_SAMPLING_MODES", "sample_negatives", "unique_ids"]

NEGATIVE_SAMPLING_MODES = ("batch", "all")


def unique_ids(ids: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(ids, return_inverse=True)`` for ids in [0, size).

    A presence mask and its running count replace the sort: O(size + n) instead of
    O(n log n), several times faster for a batch's ids over a catalogue of tens of thousands.
    """
    present = torch.zeros(size, dtype=torch.bool, device=ids.device)
    present[ids] = True
    rank = torch.cumsum(present, 0) - 1
    return torch.nonzero(present).flatten(), rank[ids]


def sample_negatives(
    pos_items: torch.Tensor,
    num_items: int,
    k: int,
    generator: torch.Generator,
    mode: str = "batch",
) -> torch.Tensor:
    """(B, k) item ids; row j holds the negatives of positive j.

    ``generator`` must live on ``pos_items.device`` (a CUDA generator for CUDA batches).
    The released code lays negative k of positive j out at flat position k * B + j; the (B, k)
    layout is the same pairing.
    """
    if mode not in NEGATIVE_SAMPLING_MODES:
        raise ValueError(f"unknown sampling mode {mode!r}; choose from {NEGATIVE_SAMPLING_MODES}")
    if k < 0 or num_items < 1:
        raise ValueError(f"need k >= 0 and num_items >= 1, got k={k}, num_items={num_items}")
    size = (pos_items.numel(), k)
    device = pos_items.device
    if mode == "all":
        return torch.randint(num_items, size, generator=generator, device=device)
    pool = unique_ids(pos_items, num_items)[
        0
    ]  # sorted, so the draw depends only on the set of items
    if pool.numel() == 0:
        return torch.empty(size, dtype=torch.long, device=device)
    return pool[torch.randint(pool.numel(), size, generator=generator, device=device)]
