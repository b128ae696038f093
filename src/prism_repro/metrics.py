"""Ranking metrics as pure functions over tensors of top-k hits.

NDCG@k with binary relevance, as the paper and its released code define it: DCG over the top k
ranks with discount 1/log2(rank + 1); IDCG over min(k, number of held-out items of the user).
Users without held-out items get NaN and are left out of means.
"""

from __future__ import annotations

import torch


def _discounts(k: int, device=None) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=device))


def ideal_dcg(num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """IDCG per user: the sum of the first min(k, n_u) discounts (0 where n_u = 0)."""
    cum = torch.cat(
        [
            torch.zeros(1, dtype=torch.float64, device=num_relevant.device),
            _discounts(k, num_relevant.device).cumsum(0),
        ]
    )
    return cum[num_relevant.clamp(max=k).long()]


def ndcg(hits: torch.Tensor, num_relevant: torch.Tensor) -> torch.Tensor:
    """Per-user NDCG@k; ``hits`` is (users, k) 0/1 by rank, ``num_relevant`` (users,)."""
    k = hits.shape[1]
    dcg = (hits.double() * _discounts(k, hits.device)).sum(1)
    idcg = ideal_dcg(num_relevant, k)
    return torch.where(
        num_relevant > 0, dcg / idcg.clamp(min=1e-12), torch.full_like(dcg, float("nan"))
    )


def stratified_ndcg(
    hits: torch.Tensor, hit_strata: torch.Tensor, num_relevant: torch.Tensor, num_strata: int = 3
) -> torch.Tensor:
    """Per-user NDCG@k split by the stratum of each ranked item: (users, num_strata).

    Gains of items outside a stratum count 0 and the IDCG stays the user's overall IDCG, so the
    columns sum to the overall NDCG of each user (the paper's popular / neutral / unpopular split).
    """
    parts = [ndcg(hits * (hit_strata == s), num_relevant) for s in range(num_strata)]
    return torch.stack(parts, dim=1)


def mean_over_users(values: torch.Tensor) -> float:
    """Mean over users that have held-out items (NaN rows are users without any)."""
    valid = ~torch.isnan(values)
    return float(values[valid].mean()) if bool(valid.any()) else float("nan")
