"""Full ranking over all items, chunked over users so memory stays bounded.

For a user chunk: scores = U_chunk @ I^T, known items masked to -inf, top-k on the device; the
cosine top-k reuses the same block, scaled by inverse norms. Only the (chunk x items) score block is ever materialised,
so AmazonBook (52,643 x 91,599) fits a 16 GB GPU or this machine's memory.
"""

from __future__ import annotations

import numpy as np
import torch

from prism_repro.metrics import mean_over_users, ndcg, stratified_ndcg

# One chunk of float32 scores. On CPU the block is sized to stay in the last-level cache, so the
# masking and top-k passes read what the matrix product just wrote (Gowalla, 2 cores: dot and
# cosine together 2.1 s in 64-user chunks against 6 s in 256 MiB chunks); a GPU wants big blocks.
SCORE_BLOCK_BYTES = {"cpu": 8 * 2**20}
DEFAULT_SCORE_BLOCK_BYTES = 256 * 2**20
SCORES = ("dot", "cosine")


def chunk_rows(num_items: int, device: torch.device) -> int:
    budget = SCORE_BLOCK_BYTES.get(torch.device(device).type, DEFAULT_SCORE_BLOCK_BYTES)
    return max(1, budget // (4 * num_items))


class UserItemSets:
    """Per-user item sets in CSR form (indptr over users, sorted item ids)."""

    def __init__(self, pairs: np.ndarray, num_users: int, device):
        order = (
            np.lexsort((pairs[:, 1], pairs[:, 0])) if len(pairs) else np.zeros(0, dtype=np.int64)
        )
        pairs = pairs[order]
        counts = (
            np.bincount(pairs[:, 0], minlength=num_users)
            if len(pairs)
            else np.zeros(num_users, dtype=np.int64)
        )
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


# CPU top-k by groups of this many items (topk_rows): 3.6x faster than torch.topk over a Gowalla
# score block on one thread (1.7 ms against 6.2 ms a 51-user chunk); 32 and 128 measured close
TOPK_GROUP = 64


def topk_rows(block: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each row's k largest entries, largest first, as ``torch.topk(block, k).indices``.

    On CPU each row is cut into groups of TOPK_GROUP items: the k largest entries lie in the k
    groups with the largest maxima (a group holding one of them has a maximum at least the k-th
    value, and at most k groups do), so one max pass over the block and a top-k over k groups
    (plus the last, partial group) replace the full top-k. The values are exactly torch.topk's;
    where entries tie, the tied items may come in another order (as between torch versions)."""
    rows, n = block.shape
    g = TOPK_GROUP
    full = n // g
    if block.device.type != "cpu" or full <= k or block.stride(1) != 1:
        return torch.topk(block, k, dim=1, sorted=True).indices
    groups = block.as_strided((rows, full, g), (block.stride(0), g, 1))
    best = torch.topk(groups.amax(dim=2), k, dim=1, sorted=False).indices  # (rows, k)
    candidates = torch.cat(
        [
            torch.gather(groups, 1, best[:, :, None].expand(rows, k, g)).flatten(1),
            block[:, full * g :],
        ],
        dim=1,
    )
    pos = torch.topk(candidates, k, dim=1, sorted=True).indices
    in_groups = pos < k * g
    grouped = best.gather(1, (pos // g).clamp_max(k - 1)) * g + pos % g
    return torch.where(in_groups, grouped, full * g + pos - k * g)


def masked_blocks(
    user_out: torch.Tensor, item_out: torch.Tensor, users: torch.Tensor, known: list[UserItemSets]
):
    """Yield (the chunk's users, their dot-product score block) per user chunk, each user's known
    items at -inf."""
    num_items = item_out.shape[0]
    chunk = chunk_rows(num_items, user_out.device)
    item_t = item_out.t().contiguous()
    for start in range(0, len(users), chunk):
        batch = users[start : start + chunk]
        block = user_out[batch] @ item_t
        flat = block.view(-1)
        for sets in known:
            rows, items = sets.rows_of(batch)
            flat.index_fill_(0, rows * num_items + items, float("-inf"))
        yield batch, block


def topk_items(
    user_out: torch.Tensor,
    item_out: torch.Tensor,
    users: torch.Tensor,
    known: list[UserItemSets],
    k: int,
    scores: tuple[str, ...] = ("dot",),
) -> dict[str, torch.Tensor]:
    """Top-k item ids (users, k) for each score, excluding each user's known items.

    Every score comes from one matrix product per chunk: cosine is the dot-product block scaled
    in place by 1 / max(||u||, eps) and 1 / max(||i||, eps) (``F.normalize``'s eps), after the
    dot top-k is read. Masked entries stay -inf under the positive scaling.
    """
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ValueError(f"scores must be a non-empty subset of {SCORES}, got {scores!r}")
    if "cosine" in scores:
        eps = 1e-12
        inv_user = user_out.norm(dim=1).clamp_min(eps).reciprocal()
        inv_item = item_out.norm(dim=1).clamp_min(eps).reciprocal()
    out = {score: [] for score in scores}
    for batch, block in masked_blocks(user_out, item_out, users, known):
        if "dot" in scores:
            out["dot"].append(topk_rows(block, k))
        if "cosine" in scores:
            block.mul_(inv_user[batch, None]).mul_(inv_item)
            out["cosine"].append(topk_rows(block, k))
    return {score: _stack(parts, k, user_out.device) for score, parts in out.items()}


def topk_items_offsets(
    user_out: torch.Tensor,
    item_out: torch.Tensor,
    offsets: torch.Tensor,
    users: torch.Tensor,
    known: list[UserItemSets],
    k: int,
) -> list[torch.Tensor]:
    """Top-k item ids (users, k) for each ranking u . i + offsets[j, i], excluding known items.

    Rankings that differ only by a per-item offset (MACR's counterfactual c) share one matrix
    product and one masking per chunk; each then costs one addition and one top-k."""
    if offsets.ndim != 2 or offsets.shape[1] != item_out.shape[0]:
        raise ValueError(
            f"offsets must be (settings, {item_out.shape[0]} items), got {tuple(offsets.shape)}"
        )
    out = [[] for _ in range(len(offsets))]
    scratch = None
    for _, block in masked_blocks(user_out, item_out, users, known):
        if scratch is None or scratch.shape != block.shape:
            scratch = torch.empty_like(block)
        for parts, offset in zip(out, offsets):
            torch.add(block, offset, out=scratch)  # -inf + finite stays -inf
            parts.append(topk_rows(scratch, k))
    return [_stack(parts, k, user_out.device) for parts in out]


def _stack(parts: list[torch.Tensor], k: int, device) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.zeros(0, k, dtype=torch.long, device=device)


def evaluate_rankings(
    user_out,
    item_out,
    heldout: UserItemSets,
    known: list[UserItemSets],
    item_stratum: torch.Tensor,
    k: int,
    scores: tuple[str, ...] = ("dot",),
    strata: bool = True,
) -> dict[str, dict]:
    """Per score: NDCG@k overall (and per popularity stratum) over users with a held-out item."""
    with torch.no_grad():
        users = torch.nonzero(heldout.counts > 0).flatten()
        tops = topk_items(user_out, item_out, users, known, k, scores)
        results = score_topk(
            list(tops.values()), users, heldout, item_stratum, item_out.shape[0], strata
        )
        return dict(zip(tops, results))


def evaluate_offset_rankings(
    user_out,
    item_out,
    offsets: torch.Tensor,
    heldout: UserItemSets,
    known: list[UserItemSets],
    item_stratum: torch.Tensor,
    k: int,
    strata: bool = True,
) -> list[dict]:
    """NDCG@k (as :func:`evaluate_rankings`' dot score) of each ranking u . i + offsets[j]."""
    with torch.no_grad():
        users = torch.nonzero(heldout.counts > 0).flatten()
        tops = topk_items_offsets(user_out, item_out, offsets, users, known, k)
        return score_topk(tops, users, heldout, item_stratum, item_out.shape[0], strata)


def score_topk(
    tops: list[torch.Tensor],
    users: torch.Tensor,
    heldout: UserItemSets,
    item_stratum: torch.Tensor,
    num_items: int,
    strata: bool,
) -> list[dict]:
    """NDCG@k of each top-k list (users, k) against the held-out items, overall and per
    stratum; the held-out lookup is built once for all lists."""
    held_keys = heldout.items + num_items * torch.repeat_interleave(
        torch.arange(len(heldout.counts), device=users.device), heldout.counts
    )
    n_rel = heldout.counts[users]
    results = []
    for top in tops:
        hits = torch.isin(top + num_items * users[:, None], held_keys)
        result = {"ndcg": mean_over_users(ndcg(hits, n_rel)), "users": int(len(users))}
        if strata:
            parts = stratified_ndcg(hits, item_stratum[top], n_rel)
            for s, name in enumerate(("popular", "neutral", "unpopular")):
                result[f"ndcg_{name}"] = mean_over_users(parts[:, s])
        results.append(result)
    return results


def evaluate_ranking(
    user_out,
    item_out,
    heldout: UserItemSets,
    known: list[UserItemSets],
    item_stratum: torch.Tensor,
    k: int,
    score: str = "dot",
    strata: bool = True,
) -> dict:
    """NDCG@k overall (and per popularity stratum) for one score."""
    return evaluate_rankings(user_out, item_out, heldout, known, item_stratum, k, (score,), strata)[
        score
    ]
