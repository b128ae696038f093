import math

import pytest
import torch

from prism_repro.metrics import ideal_dcg, mean_over_users, ndcg, stratified_ndcg

D = [1 / math.log2(r + 1) for r in range(1, 6)]  # discounts of ranks 1..5


def test_ndcg_hand_computed_with_fewer_relevant_than_k():
    # k = 3; user 0 hits at ranks 1 and 3 and has 2 held-out items -> IDCG over 2 ranks
    hits = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    n_rel = torch.tensor([2, 5, 0])
    got = ndcg(hits, n_rel)
    assert got[0].item() == pytest.approx((D[0] + D[2]) / (D[0] + D[1]))
    assert got[1].item() == pytest.approx(D[1] / (D[0] + D[1] + D[2]))  # IDCG capped at k = 3
    assert math.isnan(got[2].item())  # no held-out items: left out
    assert mean_over_users(got) == pytest.approx((got[0].item() + got[1].item()) / 2)


def test_perfect_ranking_scores_one():
    hits = torch.tensor([[1, 1, 0, 0]])
    assert ndcg(hits, torch.tensor([2])).item() == pytest.approx(1.0)


def test_ideal_dcg_values():
    got = ideal_dcg(torch.tensor([0, 1, 2, 9]), k=3)
    assert got.tolist() == pytest.approx([0.0, D[0], D[0] + D[1], D[0] + D[1] + D[2]])


def test_stratified_ndcg_hand_computed_and_sums_to_overall():
    hits = torch.tensor([[1, 1, 0, 1]])
    strata = torch.tensor([[0, 2, 1, 1]])  # popular, unpopular, neutral, neutral
    n_rel = torch.tensor([3])
    parts = stratified_ndcg(hits, strata, n_rel)
    idcg = D[0] + D[1] + D[2]
    assert parts[0].tolist() == pytest.approx([D[0] / idcg, D[3] / idcg, D[1] / idcg])
    assert parts.sum(1).item() == pytest.approx(ndcg(hits, n_rel).item())


def test_stratified_sums_to_overall_on_random_cases():
    g = torch.Generator().manual_seed(0)
    hits = torch.randint(0, 2, (200, 20), generator=g)
    strata = torch.randint(0, 3, (200, 20), generator=g)
    n_rel = torch.randint(0, 30, (200,), generator=g)
    parts = stratified_ndcg(hits, strata, n_rel)
    overall = ndcg(hits, n_rel)
    valid = n_rel > 0
    assert torch.allclose(parts.sum(1)[valid], overall[valid])


def test_equals_pyg_link_pred_ndcg_on_random_rankings():
    from torch_geometric.metrics import LinkPredNDCG

    g = torch.Generator().manual_seed(1)
    num_users, num_items, k = 64, 50, 20
    pred = torch.stack([torch.randperm(num_items, generator=g)[:k] for _ in range(num_users)])
    truth = torch.rand(num_users, num_items, generator=g) < 0.1
    truth[0] = False
    truth[0, 3] = True
    users, items = truth.nonzero(as_tuple=True)
    metric = LinkPredNDCG(k)
    metric.update(pred, torch.stack([users, items]))
    ours_hits = truth.gather(1, pred)
    ours = ndcg(ours_hits, truth.sum(1))
    assert mean_over_users(ours) == pytest.approx(float(metric.compute()), abs=1e-6)
