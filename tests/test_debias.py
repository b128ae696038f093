"""The debiasing baselines (ReSN, IPL, MACR): hand-computed values, gradients, MACR's scores."""

import math
import statistics
from types import SimpleNamespace

import pytest
import torch

from prism_repro.debias import (
    IPL_DEFAULT_GAMMA,
    IPL_GAMMAS,
    MACR,
    MACR_C_GRID,
    ipl_gamma,
    ipl_penalty,
    macr_loss,
    macr_scores,
    resn_penalty,
)
from prism_repro.losses import LOSSES, LossBatch, bpr_loss, compute_loss, wrap_for_loss
from prism_repro.models import build_encoder

T = torch.tensor


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# U (2 users) and V (3 items): S = U V^T = [[1, 2, 0], [1, 0, 1]]
U = [[1.0, 0.0], [0.0, 1.0]]
V = [[1.0, 1.0], [2.0, 0.0], [0.0, 1.0]]
S = [[1.0, 2.0, 0.0], [1.0, 0.0, 1.0]]


# ---------------------------------------------------------------------------------------- ReSN


def test_resn_released_hand_computed():
    # x = S^T 1 = (2, 2, 1); S x = (1*2 + 2*2, 1*2 + 1*1) = (6, 3); R = (36 + 9) / (4 + 4 + 1) = 5
    assert resn_penalty(T(U), T(V), "released").item() == pytest.approx(5.0, rel=1e-6)
    # the default form is the released one
    assert resn_penalty(T(U), T(V)).item() == pytest.approx(5.0, rel=1e-6)


def test_resn_released_is_a_rayleigh_estimate_of_the_top_singular_value():
    torch.manual_seed(0)
    users, items = torch.randn(7, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    top = torch.linalg.matrix_norm(users @ items.T, ord=2).item() ** 2
    assert resn_penalty(users, items).item() <= top * (1 + 1e-12)
    # rank one (one direction): the estimate is exact
    u, v = torch.rand(6, 1, dtype=torch.float64), torch.rand(4, 1, dtype=torch.float64)
    exact = torch.linalg.matrix_norm(u @ v.T, ord=2).item() ** 2
    assert resn_penalty(u, v).item() == pytest.approx(exact, rel=1e-10)


def test_resn_official_hand_computed():
    p = [[_sig(s) for s in row] for row in S]
    col = [p[0][j] + p[1][j] for j in range(3)]
    norm = math.sqrt(sum(c * c for c in col))
    v = [c / norm for c in col]
    want = sum(sum(p[r][j] * v[j] for j in range(3)) ** 2 for r in range(2))
    assert resn_penalty(T(U), T(V), "official").item() == pytest.approx(want, rel=1e-6)


def test_resn_official_stops_the_gradient_through_the_power_iteration_vector():
    users = T(U, dtype=torch.float64, requires_grad=True)
    items = T(V, dtype=torch.float64)
    (grad,) = torch.autograd.grad(resn_penalty(users, items, "official"), users)

    def by_hand(users, stop: bool):
        p = torch.sigmoid(users @ items.T)
        v = p.sum(0) / p.sum(0).norm()
        v = v.detach() if stop else v
        return (p @ v).pow(2).sum()

    (stopped,) = torch.autograd.grad(by_hand(users, True), users)
    (through,) = torch.autograd.grad(by_hand(users, False), users)
    assert torch.allclose(grad, stopped, rtol=1e-12)
    assert not torch.allclose(grad, through, rtol=1e-6)


@pytest.mark.parametrize("form", ["released", "official"])
def test_resn_gradients_are_finite_and_match_finite_differences(form):
    gen = torch.Generator().manual_seed(3)
    users = torch.randn(5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    items = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    value = resn_penalty(users, items, form)
    grads = torch.autograd.grad(value, (users, items))
    assert all(torch.isfinite(g).all() for g in grads)
    if form == "released":  # differentiable everywhere: autograd equals finite differences
        assert torch.autograd.gradcheck(lambda u, i: resn_penalty(u, i), (users, items))


def test_resn_rejects_unknown_form_and_bad_shapes():
    with pytest.raises(ValueError, match="ReSN form"):
        resn_penalty(T(U), T(V), "exact")
    with pytest.raises(ValueError, match="one d"):
        resn_penalty(T(U), torch.ones(3, 3))


# ----------------------------------------------------------------------------------------- IPL


def test_ipl_hand_computed():
    # pairs: (item 0, score 0), (item 0, score ln 3), (item 2, score 0); sigmoid: 0.5, 0.75, 0.5
    # degrees (4, 1, 1, 0), gamma 1.5 -> d^(0.5) = (2, 1, 1, -)
    # c = (1.25, 0, 0.5, 0); r = (0.625, 0, 0.5, 0) (degree 0: r = 0); std with n - 1
    items = T([0, 0, 2])
    scores = T([0.0, math.log(3.0), 0.0])
    degree = T([4.0, 1.0, 1.0, 0.0])
    want = statistics.stdev([0.625, 0.0, 0.5, 0.0])
    assert want == pytest.approx(0.328745, abs=1e-6)
    assert ipl_penalty(items, scores, degree, 1.5).item() == pytest.approx(want, rel=1e-6)


def test_ipl_gradient_is_finite_with_unseen_and_zero_degree_items():
    scores = T([0.3, -1.2, 2.0], requires_grad=True)
    value = ipl_penalty(T([1, 1, 3]), scores, T([0.0, 2.0, 0.0, 5.0, 1.0]), 1.285)
    (grad,) = torch.autograd.grad(value, scores)
    assert torch.isfinite(value) and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_ipl_gammas_are_the_published_ones():
    assert IPL_GAMMAS == {
        "MovieLens1M": 1.826,
        "Gowalla": 1.285,
        "Yelp2018": 1.552,
        "AmazonBook": 1.446,
    }
    assert ipl_gamma("Gowalla") == 1.285 and ipl_gamma("Synthetic") == IPL_DEFAULT_GAMMA


def test_ipl_loss_adds_the_weighted_penalty_of_its_form_to_bpr():
    batch = LossBatch(
        user=T([[1.0, 0.0], [0.0, 1.0]]),
        pos=T([[2.0, 0.0], [0.0, 0.0]]),
        neg=T([[[0.0, 1.0]], [[1.0, 0.0]]]),
        pos_items=T([0, 1]),
        item_degree=T([1.0, 2.0, 1.0]),
        train_items=T([0, 1, 1, 2]),
        train_scores=T([0.0, 0.0, 0.0, 0.0]),
    )
    bpr = bpr_loss(batch).item()
    # batch form: positives' scores (2, 0) -> c = (sig 2, 0.5, 0), gamma 1: r = c / d
    got = compute_loss("ipl", batch, ipl_weight=2.0, ipl_gamma=1.0).item() - bpr
    assert got == pytest.approx(2 * statistics.stdev([_sig(2), 0.25, 0]), rel=1e-5)
    # epoch form: every training pair at score 0 -> c = (0.5, 1, 0.5), r = (0.5, 0.5, 0.5)
    got = compute_loss("ipl", batch, ipl_weight=2.0, ipl_gamma=1.0, form="epoch").item() - bpr
    assert got == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="pos_items"):
        compute_loss("ipl", LossBatch(batch.user, batch.pos, batch.neg, item_degree=T([1.0, 1.0])))


def test_debias_losses_declare_their_inputs_by_form():
    resn, ipl = LOSSES["resn"], LOSSES["ipl"]
    assert resn.needs() == {"negatives", "unique_rows"}
    assert resn.needs({"form": "official"}) == {"negatives", "unique_rows", "all_items"}
    assert LOSSES["auresn"].needs() == {"uniformity_rows", "unique_rows"}
    assert ipl.needs() == {"negatives", "pos_items", "item_degree"}
    assert ipl.needs({"form": "epoch"}) == {"negatives", "train_pairs", "item_degree"}
    with pytest.raises(ValueError, match="IPL form"):
        ipl.needs({"form": "weekly"})
    with pytest.raises(ValueError, match="ReSN form"):
        resn.needs({"form": "exact"})


def test_resn_losses_add_the_weighted_penalty_of_the_distinct_rows():
    batch = LossBatch(
        user=T(U),
        pos=T(V[:2]),
        neg=T(V[1:])[:, None, :],
        users_unique=T(U),
        items_unique=T(V),
        users_unif=T(U),
        items_unif=T(V),
        all_items=T(V[:2]),
    )
    got = compute_loss("resn", batch, resn_weight=0.5).item() - bpr_loss(batch).item()
    assert got == pytest.approx(0.5 * 5.0, rel=1e-6)  # the hand-computed penalty 5
    # the official form reads all items (here only the first two)
    official = compute_loss("resn", batch, resn_weight=1.0, form="official").item()
    want = resn_penalty(T(U), T(V[:2]), "official").item() + bpr_loss(batch).item()
    assert official == pytest.approx(want, rel=1e-6)
    au = compute_loss("auresn", batch, gamma=2.0, resn_weight=0.5).item()
    assert au == pytest.approx(compute_loss("directau", batch, gamma=2.0).item() + 2.5, rel=1e-6)
    with pytest.raises(TypeError, match="takes"):
        compute_loss("resn", batch, weight=1.0)


# ---------------------------------------------------------------------------------------- MACR


def _macr(c_grid=(0.0, 3.0)) -> MACR:
    gen = torch.Generator().manual_seed(0)
    return MACR(build_encoder("mf", 4, 5, 3, generator=gen), c_grid=c_grid, generator=gen)


def test_macr_counterfactual_score_with_c_zero_is_the_factual_score():
    match, yu, yi = T([2.0, -1.0]), T([0.3, -0.2]), T([1.5, 0.0])
    factual = match * torch.sigmoid(yi) * torch.sigmoid(yu)
    assert torch.equal(macr_scores(match, yu, yi, c=0.0), factual)
    assert torch.allclose(
        macr_scores(match, yu, yi, c=1.0), (match - 1) * torch.sigmoid(yi) * torch.sigmoid(yu)
    )


@pytest.mark.parametrize("c", [0.0, 3.0])
def test_macr_ranking_rows_score_the_counterfactual(c):
    model = _macr()
    model.set_inference(c=c)
    with torch.no_grad():
        users, items = model()
        yu, yi = model.branch_logits(users, items)
        want = macr_scores(users @ items.T, yu[:, None], yi[None, :], c=c)
        rank_users, rank_items = model.ranking_outputs()
    assert torch.allclose(rank_users @ rank_items.T, want, atol=1e-6)
    if c == 0.0:  # the factual score
        factual = (users @ items.T) * torch.sigmoid(yi)[None, :] * torch.sigmoid(yu)[:, None]
        assert torch.allclose(rank_users @ rank_items.T, factual, atol=1e-6)


def test_macr_offsets_order_each_user_as_the_counterfactual_score_of_each_c():
    model = _macr(c_grid=(0.0, 0.7, 3.0))
    with torch.no_grad():
        users, items, offsets = model.ranking_offsets()
        assert offsets.shape == (3, model.num_items)
        for c, offset in zip(model.c_grid, offsets):
            model.set_inference(c=c)
            rank_users, rank_items = model.ranking_outputs()
            full = rank_users @ rank_items.T
            shared = users @ items.T + offset
            # the same scores up to one positive factor per user: sigmoid(y_u)
            factor = full / shared
            assert torch.allclose(factor, factor[:, :1].expand_as(factor), rtol=1e-5)
            assert (factor > 0).all()
            assert torch.equal(full.argsort(1), shared.argsort(1))


def test_macr_loss_hand_computed():
    # y_k: pos <(1,0),(2,0)> = 2, neg <(1,0),(0,1)> = 0; y_u = 0, y_i: pos 0, neg ln 3
    # fused: pos 2 * 1/2 * 1/2 = 0.5, neg 0
    # L_O = -log sig(0.5) - log(1 - sig(0)); L_I = -log sig(0) - log(1 - 3/4); L_U = 2 log 2
    batch = LossBatch(
        user=T([[1.0, 0.0]]),
        pos=T([[2.0, 0.0]]),
        neg=T([[[0.0, 1.0]]]),
        user_logit=T([0.0]),
        pos_logit=T([0.0]),
        neg_logit=T([[math.log(3.0)]]),
    )
    l_o = -math.log(_sig(0.5)) + math.log(2)
    l_i = math.log(2) + math.log(4)
    l_u = 2 * math.log(2)
    got = macr_loss(batch, alpha=0.1, beta=0.2).item()
    assert got == pytest.approx(l_o + 0.1 * l_i + 0.2 * l_u, rel=1e-6)
    default = compute_loss("macr", batch).item()  # alpha = beta = 1e-3
    assert default == pytest.approx(l_o + 1e-3 * (l_i + l_u), rel=1e-6)


def test_macr_loss_gradients_are_finite():
    gen = torch.Generator().manual_seed(1)
    rows = [torch.randn(*shape, generator=gen, requires_grad=True) for shape in ((4, 3), (4, 3))]
    neg = torch.randn(4, 2, 3, generator=gen, requires_grad=True)
    logits = [torch.randn(*shape, generator=gen, requires_grad=True) for shape in ((4,), (4,))]
    neg_logit = torch.randn(4, 2, generator=gen, requires_grad=True)
    batch = LossBatch(rows[0], rows[1], neg, user_logit=logits[0], pos_logit=logits[1])
    batch.neg_logit = neg_logit
    grads = torch.autograd.grad(macr_loss(batch), [*rows, neg, *logits, neg_logit])
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_macr_wraps_the_encoder_tables_once():
    model = _macr()
    assert model.user_emb is model.base.user_emb and model.gathers_rows
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "base.user_emb.weight",
        "base.item_emb.weight",
        "user_branch.weight",
        "item_branch.weight",
    ]
    assert "c" in model.state_dict()
    assert model.inference_options() == [{"c": 0.0}, {"c": 3.0}]
    with pytest.raises(ValueError, match="grid"):
        _macr(c_grid=())


def test_macr_is_the_macr_loss_model_and_plain_losses_keep_the_encoder():
    encoder = build_encoder("mf", 4, 5, 3, generator=torch.Generator().manual_seed(0))
    assert wrap_for_loss("bpr", encoder) is encoder
    wrapped = wrap_for_loss("macr", encoder)
    assert isinstance(wrapped, MACR) and wrapped.base is encoder
    assert LOSSES["macr"].needs() == {"negatives", "branch_logits"}
    # the variant key macr_c picks the grid: official sweep or the released fixed c = 1
    fixed = wrap_for_loss("macr", encoder, settings=SimpleNamespace(macr_c="fixed"))
    assert fixed.inference_options() == [{"c": 1.0}]
    swept = wrap_for_loss("macr", encoder, settings=SimpleNamespace(macr_c="sweep"))
    assert swept.inference_options() == [{"c": c} for c in MACR_C_GRID]
    with pytest.raises(ValueError, match="c choice"):
        MACR(encoder, c_choice="guess")
    with pytest.raises(ValueError, match="user_logit"):
        compute_loss("macr", LossBatch(T(U), T(U), T(U)[:, None, :]))
