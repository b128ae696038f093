"""Embedding-table initialisation: Xavier-uniform (the paper's default) and PRISM.

PRISM (the paper, Sec. 4; snap-research/PRISM:dataloader.py ``get_dataloaders`` and
models.py ``RecModel.__init__``) starts every row on the unit sphere, then scales it by
alpha * ln(d + 2) + (1 - alpha), d = the node's train-split degree, so that popular nodes start
with the larger norms that weight decay would otherwise take many epochs to produce. All draws
use an explicit ``torch.Generator`` so runs never depend on the global RNG.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["xavier_init_", "prism_scale", "prism_init_", "validate_alpha"]


def validate_alpha(alpha: float) -> float:
    """PRISM's alpha interpolates between unit norms (0) and ln(d + 2) norms (1)."""
    alpha = float(alpha)
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"PRISM alpha must be in [0, 1], got {alpha}")
    return alpha


@torch.no_grad()
def xavier_init_(weight: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Xavier-uniform in place; for an (N, d) table the bound is sqrt(6 / (N + d))."""
    return nn.init.xavier_uniform_(weight, generator=generator)


def prism_scale(degrees: torch.Tensor, alpha: float) -> torch.Tensor:
    """Target row norm alpha * ln(d + 2) + (1 - alpha) (natural log, as the released code)."""
    alpha = validate_alpha(alpha)
    degrees = torch.as_tensor(degrees)
    if degrees.dim() != 1:
        raise ValueError(f"degrees must be 1-D, got shape {tuple(degrees.shape)}")
    if degrees.numel() and degrees.min() < 0:
        raise ValueError("degrees must be non-negative")
    dtype = degrees.dtype if degrees.is_floating_point() else torch.get_default_dtype()
    return alpha * torch.log(degrees.to(dtype) + 2.0) + (1.0 - alpha)


@torch.no_grad()
def prism_init_(
    weight: torch.Tensor,
    degrees: torch.Tensor,
    alpha: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Xavier-uniform, rows L2-normalised, row r scaled by ``prism_scale(degrees, alpha)[r]``."""
    scale = prism_scale(degrees, alpha)  # validates before touching the weight
    if scale.numel() != weight.size(0):
        raise ValueError(f"{scale.numel()} degrees for a table of {weight.size(0)} rows")
    xavier_init_(weight, generator)
    weight.copy_(F.normalize(weight, dim=-1) * scale.to(weight)[:, None])
    return weight
