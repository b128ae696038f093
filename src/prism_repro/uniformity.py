"""DirectAU's uniformity term: log of the mean Gaussian potential over distinct pairs.

U(X) = log mean_{a<b} exp(-t * ||x_a - x_b||^2), for rows x already L2-normalised (Wang & Isola
2020; DirectAU, Wang et al. 2022). Placeholder implementation via ``torch.pdist``; a faster one
replaces it with the same signature and value.
"""

from __future__ import annotations

import torch


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.pdist(x).pow(2).mul(-t).exp().mean().log()
