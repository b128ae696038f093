import math

import pytest
import torch
import torch.nn.functional as F

from prism_repro import uniformity as mod
from prism_repro.uniformity import _uniformity, uniformity, uniformity_reference


def _z(n, d=16, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype)


def _ref_value_and_grad(z64, t=2.0):
    z = z64.clone().requires_grad_(True)
    u = uniformity_reference(F.normalize(z, dim=1), t)
    (g,) = torch.autograd.grad(u, z)
    return u.item(), g


def _value_and_grad(fn, z, t=2.0):
    z = z.clone().requires_grad_(True)
    u = fn(F.normalize(z, dim=1), t)
    (g,) = torch.autograd.grad(u, z)
    return u.item(), g.double()


# block sizes: default, several uneven tiles, and one whole-matrix tile (the CUDA configuration)
CONFIGS = [{}, {"block": 64}, {"block": 10_000}]


@pytest.mark.parametrize("n", [2, 3, 257, 1000])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_float32_value_matches_float64_pdist(n, cfg):
    z = _z(n, seed=n)
    ref, _ = _ref_value_and_grad(z)
    x = F.normalize(z, dim=1).float()
    got = _uniformity(x, 2.0, **cfg)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref, abs=1e-5)
    with torch.no_grad():  # forward-only path gives the same value
        assert _uniformity(x, 2.0, **cfg).item() == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("n", [2, 3, 257, 1000])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_float64_is_exact(n, cfg):
    z = _z(n, seed=n)
    ref, gref = _ref_value_and_grad(z)
    u, g = _value_and_grad(lambda x, t: _uniformity(x, t, **cfg), z)
    assert u == pytest.approx(ref, abs=1e-12)
    torch.testing.assert_close(g, gref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 257, 1000])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_float32_gradient_through_normalize_matches_reference(n, cfg):
    z = _z(n, seed=n + 1)
    _, gref = _ref_value_and_grad(z)
    _, g = _value_and_grad(lambda x, t: _uniformity(x, t, **cfg), z.float())
    rel = ((g - gref).norm() / gref.norm()).item()
    assert rel < 1e-5


def test_bf16_backward_operands_stay_accurate():
    # the reduced-precision option: gradient relative error well under 1e-2, value unaffected
    z = _z(1500, d=64, seed=3)
    ref, gref = _ref_value_and_grad(z)
    u, g = _value_and_grad(lambda x, t: _uniformity(x, t, bwd_dtype=torch.bfloat16), z.float())
    assert u == pytest.approx(ref, abs=1e-5)
    assert ((g - gref).norm() / gref.norm()).item() < 1e-2


@pytest.mark.parametrize("t", [0.5, 2.0, 30.0])  # 30 takes the shifted (w <= 1) branch
def test_other_temperatures(t):
    z = _z(300, seed=4)
    ref, gref = _ref_value_and_grad(z, t)
    u, g = _value_and_grad(lambda x, tt: _uniformity(x, tt, block=100), z, t)
    assert u == pytest.approx(ref, abs=1e-10)
    torch.testing.assert_close(g, gref, rtol=1e-8, atol=1e-12)


def test_gradcheck_float64():
    x = _z(9, d=4, seed=5).requires_grad_(True)
    # dot-product form with x free, several tiles including the uneven last one
    assert torch.autograd.gradcheck(lambda v: _uniformity(v, 2.0, block=4), (x,))
    assert torch.autograd.gradcheck(lambda v: uniformity(F.normalize(v, dim=1)), (x,))
    assert torch.autograd.gradcheck(lambda v: _uniformity(v, 2.0, block=100), (x,))


def test_gradient_scales_with_upstream_gradient():
    z = _z(50, seed=6)
    x = F.normalize(z, dim=1).requires_grad_(True)
    (g1,) = torch.autograd.grad(uniformity(x), x)
    (g3,) = torch.autograd.grad(-3.0 * uniformity(x), x)
    torch.testing.assert_close(g3, -3.0 * g1)


def test_invariant_to_row_permutation():
    z = _z(700, d=64, seed=7).float()
    x = F.normalize(z, dim=1)
    perm = torch.randperm(700, generator=torch.Generator().manual_seed(0))
    a = uniformity(x.clone().requires_grad_(True))
    xp = x[perm].clone().requires_grad_(True)
    b = uniformity(xp)
    assert a.item() == pytest.approx(b.item(), abs=1e-6)
    xa = x.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(uniformity(xa), xa)
    (gb,) = torch.autograd.grad(b, xp)
    torch.testing.assert_close(gb, ga[perm], rtol=1e-4, atol=1e-7)


def test_non_contiguous_input():
    z = _z(64, d=300, seed=11)  # (64, 300) -> its transpose is a (300, 64) strided view
    x = F.normalize(z.T, dim=1)
    assert not x.is_contiguous()
    assert uniformity(x).item() == pytest.approx(uniformity_reference(x).item(), abs=1e-12)


def test_two_rows_closed_form():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert uniformity(x).item() == pytest.approx(-2.0 * 2.0)  # ||x0 - x1||^2 = 2, t = 2


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_rows_is_zero_with_zero_gradient(n):
    x = torch.randn(n, 8, requires_grad=True)
    u = uniformity(x)
    assert u.item() == 0.0
    u.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_rejects_non_matrix():
    with pytest.raises(ValueError):
        uniformity(torch.randn(3, 4, 5))


def test_onednn_setting_is_restored():
    mm = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    if mm is None or not hasattr(mm, "fp32_precision"):
        pytest.skip("torch without per-backend fp32 precision")
    before = mm.fp32_precision
    x = F.normalize(_z(100, seed=8).float(), dim=1).requires_grad_(True)
    _uniformity(x, 2.0, onednn=True).backward()
    assert mm.fp32_precision == before


def test_autocast_does_not_lower_precision():
    z = _z(400, seed=9)
    ref, _ = _ref_value_and_grad(z)
    x = F.normalize(z, dim=1).float().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        u = uniformity(x)
    assert u.dtype == torch.float32
    assert u.item() == pytest.approx(ref, abs=1e-5)


def test_matches_documented_closed_form_on_unit_rows():
    # U = ln(sum_{a<b} exp(2t<x_a,x_b>)) - 2t - ln(n(n-1)/2)
    x = F.normalize(_z(40, seed=10), dim=1)
    g = x @ x.T
    iu = torch.triu_indices(40, 40, 1)
    want = torch.logsumexp(4.0 * g[iu[0], iu[1]], 0) - 4.0 - math.log(40 * 39 / 2)
    assert uniformity(x).item() == pytest.approx(want.item(), abs=1e-12)
    assert mod.__doc__ and "radial" in mod.__doc__
