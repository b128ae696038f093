"""Full ranking over all items, chunked over users so memory stays bounded.

For a user chunk: scores = U_chunk @ I^T (dot, or cosine on normalised rows), known items
masked to -inf, top-k on the device. Only the (chunk x items) score block is ever materialised,
so AmazonBook (52,643 x 91,599) fits a 16 GB GPU or this machine's memory.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prism_repro.metrics import mean_over_users, ndcg, stratified_ndcg

SCORE_BUDGET_BYTES = 256 * 2**20  # one chunk of float32 scores


class UserItemSets:
    """Per-user item sets in CSR form (indptr over users, sorted item ids)."""

    def __init__(self, pairs: np.ndarray, num_users: int, device):
        order = np.lexsort((pairs[:, 1], pairs[:, 0])) if len(pairs) else np.zeros(0, dtype=np.int64)
        pairs = pairs[order]
        counts = np.bincount(pairs[:, 0], minlength=num_users) if len(pairs) else np.zeros(num_users, dtype=np.int64)
        self.indptr = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])).to(device)
        self.items = torch.from_numpy(np.ascontiguousarray(pairs[:, 1])).to(device)
        self.counts = torch.from_numpy(counts).to(device)

    def rows_of(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in the chunk, item) for every item of the given users."""
        starts, counts = self.indptr[users], self.counts[users]
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        offsets = torch.arange(int(counts.sum()), device=users.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        return rows, self.items[torch.repeat_interleave(starts, counts) + offsets]


def topk_items(user_out: torch.Tensor, item_out: torch.Tensor, users: torch.Tensor, known: list[UserItemSets], k: int, score: str = "dot") -> torch.Tensor:
    """Top-k item ids (users, k) by score, excluding each user's known items."""
    if score == "cosine":
        user_out, item_out = F.normalize(user_out, dim=-1), F.normalize(item_out, dim=-1)
    elif score != "dot":
        raise ValueError(f"score must be 'dot' or 'cosine', got {score!r}")
    num_items = item_out.shape[0]
    chunk = max(1, SCORE_BUDGET_BYTES // (4 * num_items))
    item_t = item_out.t().contiguous()
    out = []
    for start in range(0, len(users), chunk):
        batch = users[start : start + chunk]
        scores = user_out[batch] @ item_t
        flat = scores.view(-1)
        for sets in known:
            rows, items = sets.rows_of(batch)
            flat.index_fill_(0, rows * num_items + items, float("-inf"))
        out.append(torch.topk(scores, k, dim=1, sorted=True).indices)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long, device=user_out.device)


def evaluate_ranking(user_out, item_out, heldout: UserItemSets, known: list[UserItemSets], item_stratum: torch.Tensor, k: int, score: str = "dot", strata: bool = True) -> dict:
    """NDCG@k overall (and per popularity stratum) over users with at least one held-out item."""
    with torch.no_grad():
        users = torch.nonzero(heldout.counts > 0).flatten()
        top = topk_items(user_out, item_out, users, known, k, score)
        num_items = item_out.shape[0]
        held_keys = heldout.items + num_items * torch.repeat_interleave(
            torch.arange(len(heldout.counts), device=users.device), heldout.counts
        )
        top_keys = top + num_items * users[:, None]
        hits = torch.isin(top_keys, held_keys)
        n_rel = heldout.counts[users]
        result = {"ndcg": mean_over_users(ndcg(hits, n_rel)), "users": int(len(users))}
        if strata:
            parts = stratified_ndcg(hits, item_stratum[top], n_rel)
            for s, name in enumerate(("popular", "neutral", "unpopular")):
                result[f"ndcg_{name}"] = mean_over_users(parts[:, s])
    return result
