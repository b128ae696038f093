import copy

import pytest
import torch
from torch import nn

from prism_repro.models import (
    LightGCN,
    NonLinearMF,
    _Propagation,
    build_encoder,
    normalized_bipartite_adjacency,
)
from prism_repro.registry import BACKBONES, resolve

NU, NI, D = 5, 7, 4
# user 4 and item 6 have no edges; (0, 1) appears twice and must count once
EDGES = torch.tensor([[0, 0, 0, 1, 1, 2, 3, 3, 0], [0, 1, 2, 1, 3, 4, 5, 0, 1]])


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _build(name, **kw):
    edges = EDGES if name == "lightgcn" else None
    return build_encoder(name, NU, NI, D, train_edges=edges, generator=_gen(), **kw)


def dense_lightgcn(user_emb, item_emb, edges, num_layers=3):
    """Reference: dense A_hat = D^-1/2 A D^-1/2 and the mean of A_hat^k X, k = 0..num_layers."""
    nu, ni = user_emb.size(0), item_emb.size(0)
    a = torch.zeros(nu + ni, nu + ni, dtype=user_emb.dtype)
    for u, i in edges.T.tolist():
        a[u, nu + i] = a[nu + i, u] = 1.0
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    a_hat = inv[:, None] * a * inv[None, :]
    x = torch.cat([user_emb, item_emb])
    layers = [x]
    for _ in range(num_layers):
        layers.append(a_hat @ layers[-1])
    out = torch.stack(layers).mean(0)
    return out[:nu], out[nu:]


def test_registry_and_builder():
    assert set(BACKBONES) == {"mf", "nlmf", "lightgcn"}
    for name in BACKBONES:
        enc = _build(name)
        assert isinstance(enc, resolve(BACKBONES[name].builder))
        assert isinstance(enc.user_emb, nn.Embedding) and enc.user_emb.weight.shape == (NU, D)
        assert isinstance(enc.item_emb, nn.Embedding) and enc.item_emb.weight.shape == (NI, D)
    with pytest.raises(ValueError, match="unknown model"):
        build_encoder("ngcf", NU, NI, D)
    with pytest.raises(ValueError, match="train_edges"):
        build_encoder("lightgcn", NU, NI, D)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_encode_matches_forward_rows(name):
    enc = _build(name)
    users, items = torch.tensor([3, 0, 3]), torch.tensor([6, 2, 1])
    u_all, i_all = enc()
    assert u_all.shape == (NU, D) and i_all.shape == (NI, D)
    u, i = enc.encode(users, items)
    torch.testing.assert_close(u, u_all[users])
    torch.testing.assert_close(i, i_all[items])


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_seeded_builds_are_identical_and_leave_global_rng_alone(name):
    state = torch.get_rng_state()
    a, b = _build(name), _build(name)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = build_encoder(name, NU, NI, D, train_edges=EDGES, generator=_gen(1))
    assert not torch.equal(a.user_emb.weight, c.user_emb.weight)


def test_mf_outputs_are_the_embedding_rows():
    enc = _build("mf")
    u, i = enc()
    assert u is enc.user_emb.weight and i is enc.item_emb.weight


def test_lightgcn_equals_dense_reference():
    enc = _build("lightgcn")
    u, i = enc()
    ru, ri = dense_lightgcn(enc.user_emb.weight.detach(), enc.item_emb.weight.detach(), EDGES)
    torch.testing.assert_close(u.detach(), ru, atol=1e-5, rtol=0)
    torch.testing.assert_close(i.detach(), ri, atol=1e-5, rtol=0)
    # isolated nodes keep only layer 0: their output is row / 4
    torch.testing.assert_close(u[4].detach(), enc.user_emb.weight[4].detach() / 4)


def test_lightgcn_reference_in_float64_and_gradients_flow():
    enc = _build("lightgcn").double()
    enc.set_graph(EDGES)  # recompute the weights in float64
    u, i = enc()
    ru, ri = dense_lightgcn(enc.user_emb.weight.detach(), enc.item_emb.weight.detach(), EDGES)
    torch.testing.assert_close(u.detach(), ru, atol=1e-12, rtol=0)
    (u.sum() + i.pow(2).sum()).backward()
    assert enc.user_emb.weight.grad is not None and enc.item_emb.weight.grad.abs().sum() > 0


def test_adjacency_is_symmetric_normalised():
    adj = normalized_bipartite_adjacency(EDGES, NU, NI).to_dense()
    torch.testing.assert_close(adj, adj.T)
    # user 0 has items {0, 1, 2} (degree 3), item 1 has users {0, 1} (degree 2)
    assert adj[0, NU + 1].item() == pytest.approx(1 / (3 * 2) ** 0.5)
    assert adj[0, 0].item() == 0.0 and adj[:NU, :NU].abs().sum() == 0
    with pytest.raises(ValueError):
        normalized_bipartite_adjacency(torch.tensor([[0], [NI]]), NU, NI)


def test_set_graph_swaps_the_propagation_graph():
    enc = _build("lightgcn")
    before = enc()[0].detach().clone()
    more = torch.cat([EDGES, torch.tensor([[4], [6]])], dim=1)  # e.g. train + val edges
    enc.set_graph(more)
    ru, _ = dense_lightgcn(enc.user_emb.weight.detach(), enc.item_emb.weight.detach(), more)
    after = enc()[0].detach()
    torch.testing.assert_close(after, ru, atol=1e-5, rtol=0)
    assert not torch.allclose(after[4], before[4])


def test_lightgcn_copies_and_checkpoints_without_the_graph():
    enc = _build("lightgcn")
    clone = copy.deepcopy(enc)
    torch.testing.assert_close(clone()[0], enc()[0])
    state = enc.state_dict()
    assert set(state) == {"user_emb.weight", "item_emb.weight"}
    fresh = LightGCN(NU, NI, D, EDGES)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh()[1], enc()[1])


def test_nlmf_towers_have_the_papers_shape():
    enc = _build("nlmf")
    for tower in (enc.user_tower, enc.item_tower):
        kinds = [type(m) for m in tower]
        assert kinds == [nn.Linear, nn.ReLU, nn.Linear]
        assert all(m.bias is not None for m in tower if isinstance(m, nn.Linear))
    assert [type(m) for m in _build("nlmf", relu=False).user_tower] == [nn.Linear, nn.Linear]


def _tower_is_affine(enc: NonLinearMF) -> bool:
    gen = _gen(5)
    x, y = torch.randn(20, D, generator=gen), torch.randn(20, D, generator=gen)
    a = 0.3
    ok = True
    for tower in (enc.user_tower, enc.item_tower):
        lhs = tower(a * x + (1 - a) * y)
        rhs = a * tower(x) + (1 - a) * tower(y)
        ok &= torch.allclose(lhs, rhs, atol=1e-5)
    return ok


def test_nlmf_without_relu_is_affine_as_released():
    assert _tower_is_affine(_build("nlmf", relu=False))
    assert not _tower_is_affine(_build("nlmf", relu=True))


# ---------------------------------------------------------------- fast paths = previous formulas


def _lightgcn_previous(enc, users, items):
    """LightGCN before the fused propagation: PyG's LGConv(normalize=False) on the whole CSR
    adjacency three times, the layer mean, then a row gather."""
    from torch_geometric.nn import LGConv

    adj = enc.adjacency()
    x = torch.cat([enc.user_emb.weight, enc.item_emb.weight])
    total = x
    conv = LGConv(normalize=False)
    for _ in range(enc.num_layers):
        x = conv(x, adj)
        total = total + x
    out = total / (enc.num_layers + 1)
    return out[:NU].index_select(0, users), out[NU:].index_select(0, items)


def _value_and_grads(fn, enc, upstream_u, upstream_i):
    enc.zero_grad()
    u, i = fn()
    ((u * upstream_u).sum() + (i * upstream_i).sum()).backward()
    grads = (enc.user_emb.weight.grad.clone(), enc.item_emb.weight.grad.clone())
    return (u.detach(), i.detach()), grads


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_lightgcn_equals_the_previous_propagation(dtype, tol):
    enc = _build("lightgcn").to(dtype)
    enc.set_graph(EDGES)
    users, items = torch.tensor([3, 0, 3, 4]), torch.tensor([6, 2, 1, 1, 0])  # repeats, isolated
    gen = _gen(3)
    up_u = torch.randn(len(users), D, generator=gen, dtype=dtype)
    up_i = torch.randn(len(items), D, generator=gen, dtype=dtype)
    want, want_grads = _value_and_grads(
        lambda: _lightgcn_previous(enc, users, items), enc, up_u, up_i
    )
    got, got_grads = _value_and_grads(lambda: enc.encode(users, items), enc, up_u, up_i)
    for a, b in zip(got + got_grads, want + want_grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    # every row (evaluation's forward), gradient included
    all_u, all_i = torch.arange(NU), torch.arange(NI)
    up_u, up_i = (
        torch.randn(NU, D, generator=gen, dtype=dtype),
        torch.randn(NI, D, generator=gen, dtype=dtype),
    )
    want, want_grads = _value_and_grads(
        lambda: _lightgcn_previous(enc, all_u, all_i), enc, up_u, up_i
    )
    got, got_grads = _value_and_grads(enc, enc, up_u, up_i)
    for a, b in zip(got + got_grads, want + want_grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_lightgcn_gradient_equals_dense_reference():
    enc = _build("lightgcn").double()
    enc.set_graph(EDGES)
    weights = (enc.user_emb.weight, enc.item_emb.weight)
    users, items = torch.tensor([1, 1, 2]), torch.tensor([5, 0])
    got = torch.autograd.grad(sum(o.pow(2).sum() for o in enc.encode(users, items)), weights)
    ru, ri = dense_lightgcn(*weights, EDGES)
    want = torch.autograd.grad(ru[users].pow(2).sum() + ri[items].pow(2).sum(), weights)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    blocks = enc._blocks()
    for rows in ((users, items), (None, None)):  # the batch's rows; every row
        assert torch.autograd.gradcheck(
            lambda w_u, w_i, rows=rows: _Propagation.apply(w_u, w_i, *rows, blocks, 3),
            tuple(w.detach().clone().requires_grad_() for w in weights),
        )


def test_csr_matmul_equals_torchs_csr_product():
    from prism_repro.kernels import csr_matmul

    adj = normalized_bipartite_adjacency(EDGES, NU, NI, dtype=torch.float64)
    x = torch.randn(NU + NI, 3, generator=_gen(2), dtype=torch.float64)
    got = csr_matmul(adj.crow_indices(), adj.col_indices(), adj.values(), x)
    torch.testing.assert_close(got, adj @ x, rtol=1e-15, atol=1e-15)
    assert got[4].abs().sum() == 0  # an isolated node's row is empty


def test_nlmf_encode_equals_the_embedding_lookup():
    enc = _build("nlmf").double()
    users, items = torch.tensor([3, 0, 3]), torch.tensor([6, 2, 2])
    gen = _gen(8)
    up_u, up_i = (
        torch.randn(3, D, generator=gen, dtype=torch.float64),
        torch.randn(3, D, generator=gen, dtype=torch.float64),
    )

    def previous():
        return enc.user_tower(enc.user_emb(users)), enc.item_tower(enc.item_emb(items))

    want, want_grads = _value_and_grads(previous, enc, up_u, up_i)
    got, got_grads = _value_and_grads(lambda: enc.encode(users, items), enc, up_u, up_i)
    for a, b in zip(got + got_grads, want + want_grads):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
