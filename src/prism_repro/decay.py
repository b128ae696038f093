"""The three weight-decay modes the paper compares.

* ``full`` (full-table decay): Adam's coupled L2, ``Adam(weight_decay=wd)``, which adds wd * theta to
  the gradient of every parameter, so every embedding row shrinks at every step, in the batch or
  not (snap-research/PRISM:train.py ``Trainer.__init__``; the paper's "weight decay").
* ``batched`` (batch-row decay): no optimizer decay; the loss gains (wd / 2)(||U_b||^2 + ||I_b||^2)
  over the *encoder outputs* of the batch's unique users and items (released ``--batched_wd``).
  The paper's Figure 3 shows it behaves like no decay, because a row is only decayed when
  sampled, i.e. in proportion to popularity, and the norm-popularity link disappears.
* ``none``.

Which rows count as "the batch's unique items" is the engine's call; the released code takes them
from the whole edge set it scores, sampled negatives included.
"""

from __future__ import annotations

import torch

__all__ = [
    "FULL_TABLE_DECAY",
    "BATCH_ROW_DECAY",
    "NO_DECAY",
    "DECAY_MODES",
    "optimizer_weight_decay",
    "batch_decay_penalty",
]

FULL_TABLE_DECAY = "full"
BATCH_ROW_DECAY = "batched"
NO_DECAY = "none"
DECAY_MODES = (NO_DECAY, FULL_TABLE_DECAY, BATCH_ROW_DECAY)


def _check(mode: str, wd: float) -> None:
    if mode not in DECAY_MODES:
        raise ValueError(f"unknown weight-decay mode {mode!r}; choose from {DECAY_MODES}")
    if wd < 0:
        raise ValueError(f"weight decay must be >= 0, got {wd}")


def optimizer_weight_decay(mode: str, wd: float) -> float:
    """The ``weight_decay`` to hand to ``torch.optim.Adam``: wd for full-table decay, else 0."""
    _check(mode, wd)
    return float(wd) if mode == FULL_TABLE_DECAY else 0.0


def batch_decay_penalty(
    mode: str, wd: float, users_out_unique: torch.Tensor, items_out_unique: torch.Tensor
) -> torch.Tensor:
    """Loss term for batch-row decay; a zero scalar for the other modes (so it can always be added)."""
    _check(mode, wd)
    if mode != BATCH_ROW_DECAY:
        return users_out_unique.new_zeros(())
    return (wd / 2) * (users_out_unique.pow(2).sum() + items_out_unique.pow(2).sum())
