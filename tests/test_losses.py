import math

import pytest
import torch

from prism_repro.losses import (
    LOSSES,
    MAWU_DEFAULT_GAMMAS,
    LossBatch,
    MawuMargins,
    bpr_loss,
    compute_loss,
    directau_loss,
    mawu_gammas,
    mawu_loss,
    ssm_loss,
    uniformity_dot,
)

T = torch.tensor
E = math.exp


def _sigmoid(x):
    return 1 / (1 + E(-x))


# ---------------------------------------------------------------- hand-computed values


def test_bpr_hand_computed():
    # pair 1: s_pos = <(1,0),(2,0)> = 2, s_neg = <(1,0),(1,0)> = 1  -> -log sig(1)  = 0.313262
    # pair 2: s_pos = <(0,1),(0,1)> = 1, s_neg = <(0,1),(0,3)> = 3  -> -log sig(-2) = 2.126928
    batch = LossBatch(
        user=T([[1.0, 0.0], [0.0, 1.0]]),
        pos=T([[2.0, 0.0], [0.0, 1.0]]),
        neg=T([[[1.0, 0.0]], [[0.0, 3.0]]]),
    )
    want = (math.log1p(E(-1)) + math.log1p(E(2))) / 2  # 1.220095
    assert bpr_loss(batch).item() == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(1.220095, abs=1e-6)


def test_bpr_averages_over_every_negative():
    # one positive (s_pos = 1), negatives with scores 0 and 2: mean(-log sig(1), -log sig(-1))
    batch = LossBatch(user=T([[1.0]]), pos=T([[1.0]]), neg=T([[[0.0], [2.0]]]))
    want = (math.log1p(E(-1)) + math.log1p(E(1))) / 2
    assert bpr_loss(batch).item() == pytest.approx(want, rel=1e-6)


def test_ssm_hand_computed():
    # tau = 0.5; cosines: positive 1, negatives 0 and -1 -> logits 2, 0, -2
    # loss = log(e^2 + e^0 + e^-2) - 2 = log(1 + e^-2 + e^-4) = 0.142932
    batch = LossBatch(user=T([[1.0, 0.0]]), pos=T([[3.0, 0.0]]), neg=T([[[0.0, 2.0], [-1.0, 0.0]]]))
    want = math.log(1 + E(-2) + E(-4))
    assert ssm_loss(batch, temperature=0.5).item() == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(0.142932, abs=1e-6)


def test_ssm_default_temperature_is_released_0_2():
    batch = LossBatch(user=T([[1.0, 0.0]]), pos=T([[1.0, 1.0]]), neg=T([[[0.0, 2.0], [-1.0, 0.0]]]))
    c = 1 / math.sqrt(2)  # cos(pos) = 1/sqrt2, cos(neg 1) = 0, cos(neg 2) = -1
    want = math.log(E(c / 0.2) + E(0.0) + E(-1 / 0.2)) - c / 0.2  # 0.028917
    assert compute_loss("ssm", batch).item() == pytest.approx(want, rel=1e-5)
    assert ssm_loss(batch, temperature=1.0).item() != pytest.approx(want, rel=1e-2)


def test_directau_hand_computed():
    # normalised pairs: ((1,0),(1,0)) -> 0 ; ((0,1),(1,0)) -> |(-1,1)|^2 = 2 ; align = 1
    # users_unif (1,0),(0,2): one pair, squared distance 2 -> U = log e^-4 = -4
    # items_unif (1,0),(0,1),(-3,0): squared distances 2, 4, 2 -> U = log((2e^-4 + e^-8)/3)
    batch = LossBatch(
        user=T([[2.0, 0.0], [0.0, 1.0]]),
        pos=T([[1.0, 0.0], [1.0, 0.0]]),
        users_unif=T([[1.0, 0.0], [0.0, 2.0]]),
        items_unif=T([[1.0, 0.0], [0.0, 1.0], [-3.0, 0.0]]),
    )
    u_item = math.log((2 * E(-4) + E(-8)) / 3)  # -4.396349
    want = 1 + 0.5 * (-4 + u_item) / 2
    assert directau_loss(batch, gamma=0.5).item() == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(-1.099087, abs=1e-6)


def test_uniformity_dot_keeps_the_tril_quirk():
    # rows (1,0),(1,1): cos = 1/sqrt2. tril(C, -1) keeps only the (1,0) entry; the other three of
    # the 2x2 matrix are 0 and contribute exp(-2*2) each.
    c = 1 / math.sqrt(2)
    want = math.log((3 * E(-4) + E(-4 + 4 * c)) / 4)  # -3.397733; a pairwise mean would give -1.17
    assert uniformity_dot(T([[1.0, 0.0], [1.0, 1.0]])).item() == pytest.approx(want, rel=1e-6)
    # rows (1,0),(-1,0),(0,1): lower-triangle cosines -1, 0, 0 -> one e^-8, eight e^-4
    want3 = math.log((8 * E(-4) + E(-8)) / 9)
    got3 = uniformity_dot(T([[1.0, 0.0], [-2.0, 0.0], [0.0, 5.0]])).item()
    assert got3 == pytest.approx(want3, rel=1e-6)


def test_mawu_hand_computed():
    # pair 1: cos 0 -> theta = pi/2; m = 0 + 0 -> widen by 1 - sig(0) = 0.5 -> cos = -sin(0.5)
    # pair 2: cos 1 -> clamp to 1 - 1e-7 -> theta = acos(1 - 1e-7); m = 1 + 1 -> widen 1 - sig(2)
    batch = LossBatch(
        user=T([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64),
        pos=T([[0.0, 3.0], [1.0, 0.0]], dtype=torch.float64),
        user_margin=T([0.0, 1.0], dtype=torch.float64),
        item_margin=T([0.0, 1.0], dtype=torch.float64),
        users_unif=T([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64),
        items_unif=T([[1.0, 0.0], [-2.0, 0.0], [0.0, 5.0]], dtype=torch.float64),
    )
    theta2 = math.acos(1 - 1e-7) + (1 - _sigmoid(2))
    align = -(-math.sin(0.5) + math.cos(theta2)) / 2  # -(-0.479426 + 0.992852)/2 = -0.256713
    u_users = math.log((3 * E(-4) + E(-4 + 4 / math.sqrt(2))) / 4)
    u_items = math.log((8 * E(-4) + E(-8)) / 9)
    want = align + 2.0 * u_users + 0.25 * u_items
    got = mawu_loss(batch, gamma_user=2.0, gamma_item=0.25).item()
    assert got == pytest.approx(want, rel=1e-9)
    assert align == pytest.approx(-0.256713, abs=1e-6)


def test_mawu_angle_is_clamped_at_pi():
    # opposite vectors: theta = pi (clamped cos), any widening is cut at pi -> align = -cos(pi) = 1
    batch = LossBatch(
        user=T([[1.0, 0.0]]),
        pos=T([[-1.0, 0.0]]),
        user_margin=T([0.0]),
        item_margin=T([0.0]),
        users_unif=T([[1.0, 0.0]]),
        items_unif=T([[1.0, 0.0]]),
    )
    # single rows: uniformity_dot = log e^-4 = -4 each, gammas 0.5 -> -4
    assert mawu_loss(batch).item() == pytest.approx(1.0 - 4.0, abs=1e-5)


# ---------------------------------------------------------------- stability


def test_bpr_and_ssm_are_finite_at_extreme_scores():
    big = LossBatch(user=T([[100.0]]), pos=T([[-100.0]]), neg=T([[[100.0]]]))
    assert bpr_loss(big).item() == pytest.approx(20000.0)
    # released exp(c / tau) overflows in float32 at tau = 1e-3; logsumexp does not
    ssm = LossBatch(user=T([[1.0, 0.0]]), pos=T([[0.0, 1.0]]), neg=T([[[1.0, 0.0]]]))
    assert ssm_loss(ssm, temperature=1e-3).item() == pytest.approx(1000.0, rel=1e-5)


# ---------------------------------------------------------------- rescaling invariance


def _random_batch(gen, dtype=torch.float32, B=5, k=3, d=4):
    r = lambda *s: torch.randn(*s, generator=gen, dtype=dtype)  # noqa: E731
    return LossBatch(
        user=r(B, d),
        pos=r(B, d),
        neg=r(B, k, d),
        users_unif=r(4, d),
        items_unif=r(6, d),
        user_margin=torch.rand(B, generator=gen, dtype=dtype),
        item_margin=torch.rand(B, generator=gen, dtype=dtype),
        user_logit=r(B),
        pos_logit=r(B),
        neg_logit=r(B, k),
        users_unique=r(4, d),
        items_unique=r(6, d),
        pos_items=torch.randint(6, (B,), generator=gen),
        item_degree=torch.randint(1, 9, (6,), generator=gen).to(dtype),
    )


def _rescaled(batch, gen):
    def scale(x):
        factors = torch.rand(*x.shape[:-1], 1, generator=gen, dtype=x.dtype) * 20 + 0.05
        return x * factors

    return LossBatch(
        user=scale(batch.user),
        pos=scale(batch.pos),
        neg=scale(batch.neg),
        users_unif=scale(batch.users_unif),
        items_unif=scale(batch.items_unif),
        user_margin=batch.user_margin,
        item_margin=batch.item_margin,
        user_logit=batch.user_logit,
        pos_logit=batch.pos_logit,
        neg_logit=batch.neg_logit,
        users_unique=scale(batch.users_unique),
        items_unique=scale(batch.items_unique),
        pos_items=batch.pos_items,
        item_degree=batch.item_degree,
    )


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_angle_based_losses_ignore_row_norms(name):
    gen = torch.Generator().manual_seed(7)
    batch = _random_batch(gen, torch.float64)
    before = compute_loss(name, batch).item()
    after = compute_loss(name, _rescaled(batch, gen)).item()
    if LOSSES[name].angle_based:
        assert after == pytest.approx(before, rel=1e-9, abs=1e-12)
    else:
        assert abs(after - before) > 1e-3


def test_angle_flags_are_the_papers_split():
    assert {n for n, s in LOSSES.items() if s.angle_based} == {"ssm", "directau", "mawu"}


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck(name):
    gen = torch.Generator().manual_seed(3)
    b = _random_batch(gen, torch.float64, B=3, k=2, d=3)
    fields = [
        "user",
        "pos",
        "neg",
        "users_unif",
        "items_unif",
        "user_margin",
        "item_margin",
        "user_logit",
        "pos_logit",
        "neg_logit",
        "users_unique",
        "items_unique",
    ]
    inputs = tuple(getattr(b, f).clone().requires_grad_(True) for f in fields)
    ids = {"pos_items": b.pos_items, "item_degree": b.item_degree}  # not differentiated

    def fn(*xs):
        return compute_loss(name, LossBatch(**dict(zip(fields, xs)), **ids))

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


# ---------------------------------------------------------------- registry and helpers


def test_registry_declares_what_each_loss_needs():
    assert LOSSES["bpr"].negatives == 1
    assert LOSSES["ssm"].negatives == 10  # the paper; the released script used 20
    assert LOSSES["directau"].negatives == 0 and LOSSES["mawu"].negatives == 0
    assert [n for n, s in LOSSES.items() if s.needs_margins] == ["mawu"]
    assert LOSSES["directau"].defaults == {"gamma": 1.0}
    assert LOSSES["ssm"].defaults == {"temperature": 0.2}


def test_compute_loss_rejects_bad_calls():
    gen = torch.Generator().manual_seed(0)
    b = _random_batch(gen)
    with pytest.raises(ValueError, match="unknown loss"):
        compute_loss("hinge", b)
    with pytest.raises(TypeError, match="gamma"):
        compute_loss("bpr", b, gamma=1.0)
    with pytest.raises(ValueError, match="negatives"):
        compute_loss("bpr", LossBatch(user=b.user, pos=b.pos))
    with pytest.raises(ValueError, match="margin"):
        compute_loss(
            "mawu",
            LossBatch(user=b.user, pos=b.pos, users_unif=b.users_unif, items_unif=b.items_unif),
        )
    with pytest.raises(ValueError, match="users_unif"):
        compute_loss("directau", LossBatch(user=b.user, pos=b.pos))


def test_compute_loss_passes_hyperparameters():
    gen = torch.Generator().manual_seed(1)
    b = _random_batch(gen)
    assert compute_loss("directau", b, gamma=2.0).item() == pytest.approx(
        directau_loss(b, gamma=2.0).item()
    )
    assert compute_loss("directau", b).item() != pytest.approx(
        compute_loss("directau", b, gamma=2.0).item()
    )


def test_directau_single_uniformity_row_gives_no_nan():
    b = LossBatch(
        user=T([[1.0, 0.0]]),
        pos=T([[1.0, 0.0]]),
        users_unif=T([[1.0, 0.0]]),
        items_unif=T([[1.0, 0.0]]),
    )
    assert directau_loss(b).item() == pytest.approx(0.0, abs=1e-6)


def test_mawu_margins_init_and_clamp():
    gen = torch.Generator().manual_seed(0)
    state = torch.get_rng_state()
    m = MawuMargins(50, 70, generator=gen)
    assert torch.equal(torch.get_rng_state(), state)
    bound = math.sqrt(6 / (50 + 1))  # xavier on a (50, 1) table
    assert m.user_margin.weight.abs().max() <= bound
    assert (m.user_margin.weight < 0).any()  # Xavier draws are signed until the first clamp
    mu, mi = m(T([0, 3, 3]), T([1, 69, 2]))
    assert mu.shape == (3,) and mi.shape == (3,)
    with torch.no_grad():
        m.item_margin.weight[0] = 5.0
    m.clamp_()
    for w in (m.user_margin.weight, m.item_margin.weight):
        assert w.min() >= 0 and w.max() <= 1
    assert m.item_margin.weight[0].item() == 1.0
    assert MawuMargins(50, 70, generator=torch.Generator().manual_seed(0)).user_margin.weight.equal(
        MawuMargins(50, 70, generator=torch.Generator().manual_seed(0)).user_margin.weight
    )


def test_mawu_gammas_published_and_fallbacks():
    assert mawu_gammas("Gowalla") == {"gamma_user": 2.6, "gamma_item": 1.4}
    assert mawu_gammas("Yelp2018", "mf") == {"gamma_user": 0.8, "gamma_item": 0.6}
    assert mawu_gammas("Gowalla", "nlmf") == {"gamma_user": 2.6, "gamma_item": 1.4}
    assert mawu_gammas("Gowalla", "lightgcn") == {"gamma_user": 2.4, "gamma_item": 1.6}
    assert (
        mawu_gammas("MovieLens1M") == MAWU_DEFAULT_GAMMAS == {"gamma_user": 0.5, "gamma_item": 0.5}
    )
    assert mawu_gammas("AmazonBook", "lightgcn") == MAWU_DEFAULT_GAMMAS
    g = mawu_gammas("Gowalla")
    g["gamma_user"] = 0.0  # callers get a copy
    assert mawu_gammas("Gowalla")["gamma_user"] == 2.6
