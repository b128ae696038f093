import math

import pytest
import torch
import torch.nn.functional as F

from prism_repro.kernels import gathered_dot, unit_rows
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
    assert LOSSES["mawu"].defaults == {
        "gamma_user": 0.5,
        "gamma_item": 0.5,
        "margin_broadcast": False,  # the paper's one margin per pair
    }
    assert [n for n, s in LOSSES.items() if s.indexed_negatives] == ["ssm"]


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


# ---------------------------------------------------------------- fast paths = previous formulas


def _ssm_previous(batch, temperature=0.2):
    """The SSM formula before the indexed fast path (normalise and multiply a (B, k, d) block)."""
    cos = lambda a, b: (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)  # noqa: E731
    pos = cos(batch.user, batch.pos)
    neg = cos(batch.user[:, None, :], batch.neg)
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def _uniformity_dot_previous(x, t=2.0):
    """MAWU's uniformity before the tiled form: the full n x n matrix, tril, logsumexp."""
    xn = F.normalize(x, dim=-1)
    cos = torch.tril(xn @ xn.T, diagonal=-1)
    return torch.logsumexp((-t * (2.0 - 2.0 * cos)).flatten(), dim=0) - math.log(cos.numel())


def _grads(fn, *xs):
    xs = [x.detach().clone().requires_grad_(True) for x in xs]
    value = fn(*xs)
    return value.detach(), torch.autograd.grad(value, xs)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_ssm_indexed_negatives_equal_the_dense_formula(dtype, tol):
    gen = torch.Generator().manual_seed(11)
    B, k, m, d = 40, 6, 25, 8
    user, pos = (
        torch.randn(B, d, generator=gen, dtype=dtype),
        torch.randn(B, d, generator=gen, dtype=dtype),
    )
    rows = (
        torch.randn(m, d, generator=gen, dtype=dtype)
        * torch.rand(m, 1, generator=gen, dtype=dtype)
        * 3
    )
    index = torch.randint(m, (B, k), generator=gen)
    index[0] = 4  # one positive draws the same row k times
    index[:, 1] = 7  # and one row is drawn by every positive

    def indexed(u, p, r):
        return ssm_loss(LossBatch(user=u, pos=p, neg_rows=r, neg_index=index), temperature=0.3)

    def previous(u, p, r):
        return _ssm_previous(LossBatch(user=u, pos=p, neg=r[index]), temperature=0.3)

    got, got_grads = _grads(indexed, user, pos, rows)
    want, want_grads = _grads(previous, user, pos, rows)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    assert want_grads[2][7].abs().sum() > 0
    # the dense form of the new function is the previous formula too
    dense = LossBatch(user=user, pos=pos, neg=rows[index])
    torch.testing.assert_close(ssm_loss(dense, 0.3), _ssm_previous(dense, 0.3), rtol=tol, atol=tol)
    # and every loss that takes negatives accepts the indexed form
    indexed_batch = LossBatch(user=user, pos=pos, neg_rows=rows, neg_index=index)
    torch.testing.assert_close(compute_loss("bpr", indexed_batch), bpr_loss(dense))


def test_gathered_dot_equals_gather_and_dot():
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    rows = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    index = torch.randint(9, (30, 4), generator=gen)
    want = (u[:, None, :] * rows[index]).sum(-1)
    torch.testing.assert_close(gathered_dot(u, rows, index), want, rtol=1e-12, atol=1e-12)
    small_u, small_idx = u[:6].clone().requires_grad_(), index[:6]
    assert torch.autograd.gradcheck(
        lambda a, b: gathered_dot(a, b, small_idx), (small_u, rows.clone().requires_grad_())
    )
    assert gathered_dot(u, rows, index[:, :0]).shape == (30, 0)
    with pytest.raises(ValueError, match="index"):
        gathered_dot(u, rows, index[:5])


def test_unit_rows_is_f_normalize():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    x[3] = 0.0  # a zero row: F.normalize divides by eps there
    assert torch.equal(unit_rows(x), F.normalize(x, dim=-1))
    upstream = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    got = _grads(lambda a: (unit_rows(a) * upstream).sum(), x)[1][0]
    want = _grads(lambda a: (F.normalize(a, dim=-1) * upstream).sum(), x)[1][0]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(unit_rows, (x[4:9].clone().requires_grad_(),))


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1100])  # 1100: several tiles of the tiled kernel
def test_uniformity_dot_equals_the_previous_tril_formula(n):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, 8, generator=gen, dtype=torch.float64) * 2 + 0.3
    got, got_grad = _grads(uniformity_dot, x)
    want, want_grad = _grads(_uniformity_dot_previous, x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_grad[0], want_grad[0], rtol=1e-9, atol=1e-13)
    if n == 1:
        assert got.item() == pytest.approx(-4.0)  # one constant entry exp(-2t)
    # float32 within float tolerance of the float64 value
    assert uniformity_dot(x.float()).item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    for t in (0.5, 20.0):  # t = 20: the tiles are shifted (large exponents)
        torch.testing.assert_close(
            uniformity_dot(x, t=t), _uniformity_dot_previous(x, t=t), rtol=1e-11, atol=1e-11
        )


def test_mawu_loss_equals_the_previous_formula():
    gen = torch.Generator().manual_seed(9)
    b = _random_batch(gen, torch.float64, B=30, d=6)
    b.users_unif, b.items_unif = b.user, b.pos  # per-interaction rows, duplicates and all

    def previous(u, p, mu, mi):
        cos = (F.normalize(u, dim=-1) * F.normalize(p, dim=-1)).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7)
        angle = (torch.arccos(cos) + (1 - torch.sigmoid(mu + mi))).clamp(0.0, math.pi)
        return (
            -torch.cos(angle).mean()
            + 2.6 * _uniformity_dot_previous(u)
            + 1.4 * (_uniformity_dot_previous(p))
        )

    def new(u, p, mu, mi):
        batch = LossBatch(user=u, pos=p, users_unif=u, items_unif=p, user_margin=mu, item_margin=mi)
        return compute_loss("mawu", batch, gamma_user=2.6, gamma_item=1.4)

    inputs = (b.user, b.pos, b.user_margin, b.item_margin)
    got, got_grads = _grads(new, *inputs)
    want, want_grads = _grads(previous, *inputs)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, w in zip(got_grads, want_grads):
        torch.testing.assert_close(a, w, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- MAWU's margin broadcasting


def _mawu_align_batch(user, pos, user_margin, item_margin, dtype=torch.float64):
    one = T([[1.0, 0.0]], dtype=dtype)
    return LossBatch(
        user=T(user, dtype=dtype),
        pos=T(pos, dtype=dtype),
        user_margin=T(user_margin, dtype=dtype),
        item_margin=T(item_margin, dtype=dtype),
        users_unif=one,
        items_unif=one,
    )


def test_mawu_margin_forms_hand_computed():
    # pair 1: cos 0 -> theta1 = pi/2, margin 0 -> widen w1 = 1 - sig(0) = 0.5
    # pair 2: cos -1/2 -> theta2 = 2pi/3, margin 2 -> widen w2 = 1 - sig(2) = 0.119203
    batch = _mawu_align_batch(
        [[1.0, 0.0], [1.0, 0.0]], [[0.0, 2.0], [-1.0, math.sqrt(3)]], [0.0, 1.5], [0.0, 0.5]
    )
    t1, t2 = math.pi / 2, 2 * math.pi / 3
    w1, w2 = 0.5, 1 - _sigmoid(2.0)
    unif = 0.5 * -4.0 + 0.5 * -4.0  # one row each: the one constant entry, log e^-4
    # the paper's form: pair j's own margin
    per_pair = -(math.cos(t1 + w1) + math.cos(t2 + w2)) / 2  # -(-0.479426 - 0.599440)/2
    assert mawu_loss(batch).item() - unif == pytest.approx(per_pair, rel=1e-12)
    assert per_pair == pytest.approx(0.539433, abs=1e-6)
    # the released form: (B, 1) margins + (B,) angles -> a 2 x 2 matrix, every angle with
    # every margin; entry (j, l) = cos(min(theta_l + w_j, pi))
    broadcast = -(math.cos(t1 + w1) + math.cos(t2 + w1) + math.cos(t1 + w2) + math.cos(t2 + w2)) / 4
    got = mawu_loss(batch, margin_broadcast=True).item() - unif
    assert got == pytest.approx(broadcast, rel=1e-12)
    assert broadcast == pytest.approx(0.512943, abs=1e-6)
    assert compute_loss("mawu", batch, margin_broadcast=True).item() == pytest.approx(got + unif)


def test_mawu_broadcast_form_clamps_at_pi():
    # theta = 3pi/4 (cos -1/sqrt2) and pi/4; widen 0.9 (margin -2.197) and 0.1 (margin 2.197):
    # 3pi/4 + 0.9 > pi is clamped to pi (cos -1); the other three entries are not
    batch = _mawu_align_batch(
        [[1.0, 0.0], [1.0, 0.0]], [[-1.0, 1.0], [1.0, 1.0]], [-math.log(9), math.log(9)], [0.0, 0.0]
    )
    a, b = 3 * math.pi / 4, math.pi / 4
    want = -(-1.0 + math.cos(b + 0.9) + math.cos(a + 0.1) + math.cos(b + 0.1)) / 4
    got = mawu_loss(batch, margin_broadcast=True).item() + 4.0
    assert got == pytest.approx(want, rel=1e-12)
    per_pair = -(math.cos(a + 0.9 if a + 0.9 < math.pi else math.pi) + math.cos(b + 0.1)) / 2
    assert mawu_loss(batch).item() + 4.0 == pytest.approx(per_pair, rel=1e-12)


def _broadcast_reference(u, p, mu, mi):
    """The released alignment verbatim in shape: a (B, 1) margin added to a (B,) angle."""
    cos = (F.normalize(u, dim=-1) * F.normalize(p, dim=-1)).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7)
    margin = (mu + mi)[:, None]  # (B, 1), as Embedding(n, 1) lookups are
    angle = (torch.arccos(cos) + (1 - torch.sigmoid(margin))).clamp(0.0, math.pi)  # (B, B)
    assert angle.shape == (len(u), len(u))
    return -torch.cos(angle).mean()


@pytest.mark.parametrize("B", [1, 2, 7, 300])
def test_mawu_broadcast_form_equals_the_released_broadcast(B):
    gen = torch.Generator().manual_seed(B)
    u = torch.randn(B, 5, generator=gen, dtype=torch.float64)
    p = torch.randn(B, 5, generator=gen, dtype=torch.float64)
    p[: B // 3] = -u[: B // 3] + 0.1 * p[: B // 3]  # wide angles: the clamp at pi acts
    mu = torch.rand(B, generator=gen, dtype=torch.float64) * 4 - 2
    mi = torch.rand(B, generator=gen, dtype=torch.float64)

    def fast(u, p, mu, mi):
        one = u[:1]
        batch = LossBatch(
            user=u, pos=p, user_margin=mu, item_margin=mi, users_unif=one, items_unif=one
        )
        return mawu_loss(batch, margin_broadcast=True) + 4.0  # minus the uniformity terms

    got, got_grads = _grads(fast, u, p, mu, mi)
    want, want_grads = _grads(_broadcast_reference, u, p, mu, mi)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, w in zip(got_grads, want_grads):
        torch.testing.assert_close(a, w, rtol=1e-9, atol=1e-12)
    got32 = fast(u.float(), p.float(), mu.float(), mi.float())
    assert got32.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    if B > 2:  # the two forms differ
        per_pair = mawu_loss(
            LossBatch(
                user=u, pos=p, user_margin=mu, item_margin=mi, users_unif=u[:1], items_unif=u[:1]
            )
        )
        assert abs(per_pair.item() + 4.0 - want.item()) > 1e-4
