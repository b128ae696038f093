"""Full ranking: chunking, masking, and dot and cosine from one pass, against brute force."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prism_repro import ranking
from prism_repro.ranking import (
    UserItemSets,
    evaluate_offset_rankings,
    evaluate_ranking,
    evaluate_rankings,
    topk_items,
    topk_items_offsets,
)


def random_case(num_users=37, num_items=53, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(num_users, dim, generator=g) * torch.rand(num_users, 1, generator=g) * 3
    items = torch.randn(num_items, dim, generator=g) * torch.rand(num_items, 1, generator=g) * 3
    rng = np.random.default_rng(seed)
    pairs = np.unique(
        np.stack([rng.integers(0, num_users, 400), rng.integers(0, num_items, 400)], 1), axis=0
    )
    rng.shuffle(pairs)
    return users, items, pairs[:300], pairs[300:]


def brute_force_topk(users, items, known_pairs, k, score):
    if score == "cosine":
        users, items = F.normalize(users, dim=-1), F.normalize(items, dim=-1)
    scores = users.double() @ items.double().T
    scores[known_pairs[:, 0], known_pairs[:, 1]] = float("-inf")
    return torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]


@pytest.mark.parametrize(
    "block_bytes", [4 * 53, 4 * 53 * 5, 2**30]
)  # 1 user, 5 users, all in one chunk
def test_topk_equals_brute_force_for_every_chunking(monkeypatch, block_bytes):
    monkeypatch.setitem(ranking.SCORE_BLOCK_BYTES, "cpu", block_bytes)
    users, items, train, _ = random_case()
    known = UserItemSets(train, len(users), "cpu")
    all_users = torch.arange(len(users))
    top = topk_items(users, items, all_users, [known], 5, ("dot", "cosine"))
    for score in ("dot", "cosine"):
        assert torch.equal(top[score], brute_force_topk(users, items, train, 5, score)), score
        # no known item is ever recommended
        recommended = {(u, i) for u in range(len(users)) for i in top[score][u].tolist()}
        assert not recommended & {tuple(p) for p in train.tolist()}


def test_one_pass_equals_separate_evaluations():
    users, items, train, val = random_case(seed=3)
    n = len(users)
    train_sets, val_sets = UserItemSets(train, n, "cpu"), UserItemSets(val, n, "cpu")
    stratum = torch.arange(len(items)) % 3
    both = evaluate_rankings(users, items, val_sets, [train_sets], stratum, 10, ("dot", "cosine"))
    for score in ("dot", "cosine"):
        assert both[score] == evaluate_ranking(
            users, items, val_sets, [train_sets], stratum, 10, score
        )
    assert both["dot"] != both["cosine"]  # the scaled block really is a different ranking here


def test_cosine_ignores_row_scale():
    users, items, train, val = random_case(seed=5)
    n = len(users)
    sets = UserItemSets(val, n, "cpu"), [UserItemSets(train, n, "cpu")]
    stratum = torch.zeros(len(items), dtype=torch.long)
    scale_u = torch.rand(n, 1) * 10 + 0.1
    scale_i = torch.rand(len(items), 1) * 10 + 0.1
    a = evaluate_rankings(users, items, *sets, stratum, 10, ("cosine",))["cosine"]["ndcg"]
    b = evaluate_rankings(users * scale_u, items * scale_i, *sets, stratum, 10, ("cosine",))[
        "cosine"
    ]["ndcg"]
    assert a == pytest.approx(b, abs=1e-12)


def test_unknown_score_is_refused():
    users, items, train, _ = random_case()
    with pytest.raises(ValueError, match="scores"):
        topk_items(users, items, torch.arange(3), [], 5, ("euclid",))


@pytest.mark.parametrize("n", [64 * 21, 64 * 21 + 1, 1000, 40981 // 8])
def test_grouped_topk_equals_torch_topk(n):
    gen = torch.Generator().manual_seed(n)
    block = torch.randn(37, n, generator=gen)
    block[3, : n - 30] = float("-inf")  # a user who knows all but 30 items
    block[5, ::2] = float("-inf")
    want = torch.topk(block, 20, dim=1, sorted=True)
    got = ranking.topk_rows(block, 20)
    assert torch.equal(got, want.indices)
    assert torch.equal(block.gather(1, got), want.values)


def test_grouped_topk_with_ties_gives_the_top_values_once_each():
    gen = torch.Generator().manual_seed(1)
    block = torch.randint(0, 6, (50, 3000), generator=gen).float()  # ties everywhere
    got = ranking.topk_rows(block, 20)
    want = torch.topk(block, 20, dim=1, sorted=True).values
    assert torch.equal(block.gather(1, got), want)
    assert all(len(set(row)) == 20 for row in got.tolist())


def test_topk_items_is_the_same_with_and_without_grouping(monkeypatch):
    gen = torch.Generator().manual_seed(7)
    users, items = torch.randn(40, 16, generator=gen), torch.randn(3000, 16, generator=gen)
    train = np.stack([np.repeat(np.arange(40), 50), np.arange(2000) % 3000], axis=1)
    known = [UserItemSets(train, 40, "cpu")]
    grouped = topk_items(users, items, torch.arange(40), known, 20, ("dot", "cosine"))
    monkeypatch.setattr(ranking, "TOPK_GROUP", 10**9)  # every row in one group: torch.topk
    plain = topk_items(users, items, torch.arange(40), known, 20, ("dot", "cosine"))
    for score in ("dot", "cosine"):
        assert torch.equal(grouped[score], plain[score])


@pytest.mark.parametrize("block_bytes", [4 * 53, 4 * 53 * 5, 2**30])
def test_offset_rankings_equal_brute_force_with_the_offset_as_a_column(monkeypatch, block_bytes):
    monkeypatch.setitem(ranking.SCORE_BLOCK_BYTES, "cpu", block_bytes)
    users, items, train, _ = random_case(seed=5)
    known = UserItemSets(train, len(users), "cpu")
    g = torch.Generator().manual_seed(1)
    offsets = torch.stack([torch.zeros(len(items)), -3 * torch.rand(len(items), generator=g)])
    tops = topk_items_offsets(users, items, offsets, torch.arange(len(users)), [known], 5)
    assert len(tops) == 2
    assert torch.equal(
        tops[0], topk_items(users, items, torch.arange(len(users)), [known], 5)["dot"]
    )
    # u . i + o_i is the dot product of [u, 1] and [i, o_i]
    ones = torch.ones(len(users), 1)
    want = brute_force_topk(
        torch.cat([users, ones], 1), torch.cat([items, offsets[1, :, None]], 1), train, 5, "dot"
    )
    assert torch.equal(tops[1], want)
    assert not torch.equal(tops[0], tops[1])  # the offset really reorders


def test_offset_evaluation_equals_evaluating_each_offset_alone():
    users, items, train, val = random_case(seed=7)
    n = len(users)
    sets = (
        UserItemSets(val, n, "cpu"),
        [UserItemSets(train, n, "cpu")],
        torch.arange(len(items)) % 3,
        10,
    )
    offsets = torch.stack([torch.zeros(len(items)), torch.linspace(-2, 0, len(items))])
    together = evaluate_offset_rankings(users, items, offsets, *sets)
    alone = [
        evaluate_rankings(
            torch.cat([users, torch.ones(n, 1)], 1), torch.cat([items, o[:, None]], 1), *sets
        )["dot"]
        for o in offsets
    ]
    assert together == alone


def test_offsets_must_have_one_column_per_item():
    users, items, train, _ = random_case()
    with pytest.raises(ValueError, match="offsets must be"):
        topk_items_offsets(users, items, torch.zeros(2, 5), torch.arange(3), [], 5)
