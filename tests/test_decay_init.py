import math

import pytest
import torch

from prism_repro.decay import (
    DECAY_MODES,
    batch_decay_penalty,
    optimizer_weight_decay,
)
from prism_repro.initialization import prism_init_, prism_scale, xavier_init_
from prism_repro.losses import LossBatch, compute_loss
from prism_repro.models import build_encoder
from prism_repro.train import make_adam

# ---------------------------------------------------------------- PRISM initialisation


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_prism_rows_have_the_target_norm(alpha):
    degrees = torch.tensor([0, 1, 5, 100, 3000])
    w = torch.empty(5, 64)
    prism_init_(w, degrees, alpha, torch.Generator().manual_seed(0))
    want = [alpha * math.log(d + 2) + (1 - alpha) for d in degrees.tolist()]
    assert w.norm(dim=1).tolist() == pytest.approx(want, abs=1e-6)


def test_prism_scale_values():
    # alpha = 1: ln(2), ln(3), ln(12); alpha = 0.5: 0.5 ln(d+2) + 0.5
    got = prism_scale(torch.tensor([0, 1, 10]), 1.0)
    assert got.tolist() == pytest.approx([0.693147, 1.098612, 2.484907], abs=1e-6)
    assert prism_scale(torch.tensor([0]), 0.5).item() == pytest.approx(0.5 * math.log(2) + 0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), float("inf")])
def test_bad_alpha_raises(alpha):
    w = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="alpha"):
        prism_init_(w, torch.tensor([1, 2, 3]), alpha, torch.Generator())
    with pytest.raises(ValueError, match="alpha"):
        prism_scale(torch.tensor([1]), alpha)
    assert torch.equal(w, torch.zeros(3, 4))  # nothing written before the check


def test_prism_rejects_mismatched_or_negative_degrees():
    with pytest.raises(ValueError, match="rows"):
        prism_init_(torch.empty(3, 4), torch.tensor([1, 2]), 1.0, torch.Generator())
    with pytest.raises(ValueError, match="non-negative"):
        prism_scale(torch.tensor([1, -1]), 1.0)


def test_prism_directions_are_the_seeded_xavier_directions():
    gen_a, gen_b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    state = torch.get_rng_state()
    x = xavier_init_(torch.empty(6, 8), gen_a)
    p = prism_init_(torch.empty(6, 8), torch.arange(6), 1.0, gen_b)
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    torch.testing.assert_close(p / p.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True))


def test_xavier_bound():
    w = xavier_init_(torch.empty(1000, 64), torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / (1000 + 64))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound


def test_prism_init_acts_on_an_encoder_table():
    enc = build_encoder("mf", 4, 3, 8)
    prism_init_(enc.item_emb.weight, torch.tensor([0, 2, 7]), 1.0, torch.Generator().manual_seed(1))
    assert enc.item_emb.weight.norm(dim=1).tolist() == pytest.approx(
        [math.log(2), math.log(4), math.log(9)], abs=1e-6
    )
    assert enc.item_emb.weight.requires_grad


# ---------------------------------------------------------------- weight-decay modes


def test_optimizer_weight_decay_per_mode():
    assert optimizer_weight_decay("full", 1e-4) == 1e-4
    assert optimizer_weight_decay("batched", 1e-4) == 0.0
    assert optimizer_weight_decay("none", 1e-4) == 0.0
    with pytest.raises(ValueError, match="mode"):
        optimizer_weight_decay("decoupled", 1e-4)
    with pytest.raises(ValueError, match=">= 0"):
        optimizer_weight_decay("full", -1.0)


def test_batch_decay_penalty_hand_computed():
    # wd = 0.1: (0.1 / 2) * (|(1,2)|^2 + |(3,0)|^2 + |(0,1)|^2) = 0.05 * (5 + 9 + 1) = 0.75
    users = torch.tensor([[1.0, 2.0]])
    items = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert batch_decay_penalty("batched", 0.1, users, items).item() == pytest.approx(0.75)
    for mode in ("full", "none"):
        zero = batch_decay_penalty(mode, 0.1, users, items)
        assert zero.shape == () and zero.item() == 0.0


def test_batch_decay_penalty_gradient_is_wd_times_row():
    users = torch.tensor([[1.0, -2.0]], requires_grad=True)
    items = torch.tensor([[3.0, 0.5]], requires_grad=True)
    batch_decay_penalty("batched", 0.2, users, items).backward()
    torch.testing.assert_close(users.grad, 0.2 * users.detach())
    torch.testing.assert_close(items.grad, 0.2 * items.detach())


def _one_adam_step(mode: str, name: str = "mf") -> tuple[torch.Tensor, torch.Tensor]:
    """One training step on a batch of users {0, 1} and items {2, 3}; returns old and new tables."""
    wd = 0.1
    enc = build_encoder(
        name,
        6,
        8,
        4,
        train_edges=torch.tensor([[0, 1], [2, 3]]),
        generator=torch.Generator().manual_seed(0),
    )
    before = torch.cat([enc.user_emb.weight, enc.item_emb.weight]).detach().clone()
    opt = make_adam(enc.parameters(), 0.01, optimizer_weight_decay(mode, wd), torch.device("cpu"))
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([[3], [2]])
    u, i = enc.encode(users, pos)
    _, n = enc.encode(users, neg.reshape(-1))
    loss = compute_loss("bpr", LossBatch(user=u, pos=i, neg=n.reshape(2, 1, -1)))
    u_uni, i_uni = enc.encode(users.unique(), pos.unique())
    loss = loss + batch_decay_penalty(mode, wd, u_uni, i_uni)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return before, torch.cat([enc.user_emb.weight, enc.item_emb.weight]).detach()


OUTSIDE = [2, 3, 4, 5, 6 + 0, 6 + 1, 6 + 4, 6 + 5, 6 + 6, 6 + 7]  # stacked rows not in the batch
INSIDE = [0, 1, 6 + 2, 6 + 3]


@pytest.mark.parametrize("name", ["mf", "nlmf"])
@pytest.mark.parametrize("mode", DECAY_MODES)
def test_only_full_decay_moves_rows_outside_the_batch(mode, name):
    before, after = _one_adam_step(mode, name)
    moved = (after - before).abs().sum(dim=1) > 0
    assert moved[INSIDE].all()
    if mode == "full":
        assert moved[OUTSIDE].all()
    else:
        assert not moved[OUTSIDE].any()


def test_engine_adam_follows_plain_adam_with_coupled_decay():
    """The fused kernel is an implementation detail: same trajectory as torch.optim.Adam's loop."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(50, 8, generator=g), torch.randn(70, 8, generator=g)]
    grads = [[torch.randn_like(t, generator=g) for t in start] for _ in range(20)]
    tables = {}
    for name in ("plain", "engine"):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        if name == "plain":
            opt = torch.optim.Adam(params, lr=0.01, weight_decay=1e-2, foreach=False, fused=False)
        else:
            opt = make_adam(params, 0.01, 1e-2, torch.device("cpu"))
        for step in grads:
            for p, grad in zip(params, step):
                p.grad = grad.clone()
            opt.step()
        tables[name] = params
    assert any(not torch.equal(p, t) for p, t in zip(tables["engine"], start))
    for a, b in zip(tables["plain"], tables["engine"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
