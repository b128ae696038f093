"""DirectAU's uniformity term: log of the mean Gaussian potential over distinct pairs.

U(X) = log mean_{a<b} exp(-t * ||x_a - x_b||^2), for rows x already L2-normalised (Wang & Isola
2020; DirectAU, Wang et al. 2022). ``uniformity_reference`` is the original ``torch.pdist`` form;
``uniformity`` computes the same value (and an equivalent gradient, see below) much faster.

Why it is structured this way (CPU, n ~ 3,500 rows of d = 64, forward + backward every batch):

* Unit rows give ||x_a - x_b||^2 = 2 - 2<x_a, x_b>, so
  U = ln S - 2t - ln(n(n-1)/2) with S = sum_{a<b} w_ab and w_ab = exp(2t<x_a, x_b>) = 2^(c<x_a, x_b>),
  c = 2t*log2(e). The kernel is a Gram matrix followed by an elementwise exponential: matmul work
  instead of pdist's memory-bound distance kernel. ``exp2`` is used because torch's CPU ``exp2``
  is ~4x faster than ``exp`` at the same accuracy (<1 ulp), and the scale c is folded into the
  left matmul operand for free. While c <= 40 (t <= ~13.9) weights are at most 2^40, far from
  float32 overflow, so no max shift is needed; above that each tile is shifted by c (w <= 1).
* The n x n matrix is never materialised: rows are cut into ~equal blocks of at most 1,024 and
  only the tiles on or above the block diagonal are visited (each pair once, about half the work
  of a full Gram matrix), through one reused tile buffer. A diagonal tile is computed whole
  (cheaper than masking a triangle); its diagonal is zeroed and its sum halved.
* Backward work is done in the forward, while each tile is still in cache: with W the symmetric
  weight matrix (zero diagonal), dU/dx = (2t/S) W X; an off-diagonal tile T adds T X_J to the
  rows of block I and T^T X_I to those of block J, a diagonal tile (symmetric) only T X_I. The
  forward keeps only the n x d product, so memory is O(n d) besides one tile, and the backward
  is a scaling. When no gradient is needed the forward only sums the tiles.
* Work is then ~3 half-size float32 GEMMs, which run near the core's float32 peak; torch sends
  them to MKL, which on the AMD Zen 5 CPU measured here runs at half oneDNN's speed. On CPUs
  with native bf16 dot products (the case there) the tiles are computed under oneDNN's "bf16"
  fpmath permission, which routes float32 matmuls to oneDNN; there it still computed in float32
  (errors identical to MKL's). On AMX CPUs oneDNN rounds the operands to bf16 (gradient
  relative error ~5e-3) for no speed gain, so there the tiles stay with MKL's float32. A faster option with bf16 operands for the two W X products
  (``_uniformity(x, t, bwd_dtype=torch.bfloat16)``, ~13% less CPU time, gradient relative error
  ~2-4e-3) exists but is not the default. float64 inputs and CUDA use the input dtype
  throughout (exact, so ``torch.autograd.gradcheck`` applies); CUDA uses one tile up to n = 8,192.
  Autocast is disabled inside: the exponent must not be computed in half precision.

Gradient convention: the function differentiated is the dot-product form above, treating x as
free. Its gradient differs from pdist's only by a multiple of x_a in row a (a radial component),
which the Jacobian of ``F.normalize`` annihilates exactly, so gradients with respect to the
unnormalised embeddings agree with the reference. Rows that are not unit-length give the
dot-product form, not the pdist value: normalise first.

MAWU's uniformity (``uniformity_tril``, Park et al. CIKM'23) is log mean over the full n x n
matrix of exp(-t (2 - 2 tril(C, -1))), C the cosine matrix: the same S plus n(n+1)/2 constant
entries exp(-2t) from the zeroed diagonal and upper triangle, so it shares this machinery and
differs only in the closing formula (and a scalar factor on the gradient).

Fewer than two rows: there is no pair, the mean is undefined (pdist gives NaN). Here the term is
defined as 0 with a zero gradient, so a degenerate last batch cannot poison training (MAWU's form
has a value for one row: its one constant entry, -2t). Double backward is not supported.
"""

from __future__ import annotations

import contextlib
import math

import torch

__all__ = ["uniformity", "uniformity_reference", "uniformity_tril"]

_BLOCK_CPU = 1024  # largest CPU tile edge (n = 3,500 -> 4 blocks of 875); 512-1,024 measured alike
_BLOCK_CUDA = 8192  # on a GPU a handful of big tiles is best (n = 3,500 is one tile)
_SHIFT_ABOVE = 40.0  # c = 2t*log2(e) above this: shift tiles so that w <= 1 (t > ~13.9)


def uniformity_reference(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """DirectAU's own formula (``torch.pdist``); slow, kept for tests and benchmarks."""
    return torch.pdist(x).pow(2).mul(-t).exp().mean().log()


def _cpu_has_fast_bf16() -> bool:
    """True where oneDNN's "bf16" permission speeds float32 tiles up without rounding them.

    AVX-512-BF16 CPUs without AMX (AMD Zen 4/5): oneDNN computes in float32, twice MKL's speed.
    AMX CPUs (Intel Sapphire Rapids and later) are excluded: there oneDNN rounds the operands to
    bf16 (gradient relative error ~5e-3) and measured no faster than MKL's float32 (Intel Xeon
    with AMX, n = 3,500: 14.7 ms against 13.6 ms per fwd + bwd, benchmarks/bench_uniformity.py).
    """
    try:
        return bool(
            torch.cpu._is_avx512_bf16_supported() and not torch.cpu._is_amx_tile_supported()
        )
    except Exception:  # torch without the probes: stay with plain float32 matmuls
        return False


_FAST_BF16 = _cpu_has_fast_bf16()


@contextlib.contextmanager
def _onednn_matmuls(enable: bool):
    """Route float32 CPU matmuls to oneDNN for the duration (a process-wide torch setting, restored
    on exit).

    torch sends float32 ``mm`` to MKL unless oneDNN may use reduced precision ("bf16" fpmath).
    MKL's float32 GEMM runs at half oneDNN's speed on the AMD Zen CPUs measured here; oneDNN with
    that permission still computed these shapes in float32 there (bitwise equal to MKL for the
    Gram tile). On AMX CPUs it may round the operands to bf16 (float32 accumulation and output);
    the benchmark's "bf16-operand emulation" row shows that accuracy is acceptable too.
    """
    mm = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    old = None
    if enable and mm is not None:
        try:
            old = mm.fp32_precision
            mm.fp32_precision = "bf16"
        except Exception:
            old = None
    try:
        yield
    finally:
        if old is not None:
            mm.fp32_precision = old


def _blocks(n: int, target: int) -> list[tuple[int, int]]:
    """Split range(n) into ceil(n/target) nearly equal blocks."""
    nb = max(1, -(-n // target))
    size = -(-n // nb)
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _tiled(
    x: torch.Tensor,
    t: float,
    *,
    block: int,
    grad: bool,
    bwd_dtype: torch.dtype,
    gram_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (ln S, G): S = sum_{a<b} exp(2t <x_a, x_b>), G = (2t/S) W X = d ln S / dx if
    ``grad`` else None.

    ``gram_dtype``/``bwd_dtype``: operand dtypes of the Gram tiles and of the W X products (the
    input dtype unless a reduced-precision variant is asked for)."""
    n = x.shape[0]
    c = 2.0 * t / math.log(2.0)  # 2^(c g) = exp(2t g)
    shift = c if c > _SHIFT_ABOVE else 0.0
    gdt = x.dtype if gram_dtype is None else gram_dtype
    a = (x * c).to(gdt)  # left operand carries the scale
    xg = x.to(gdt)
    xb = x.to(bwd_dtype) if grad else x
    acc = torch.zeros_like(x) if grad else None
    s_off = x.new_zeros(())  # sum over off-diagonal tiles
    s_diag = x.new_zeros(())  # sum over diagonal tiles, diagonal excluded, both triangles
    blocks = _blocks(n, block)
    bmax = blocks[0][1]
    work = torch.empty(bmax * bmax, dtype=torch.promote_types(gdt, x.dtype), device=x.device)
    for bi, (i0, i1) in enumerate(blocks):
        for j0, j1 in blocks[bi:]:
            tile = work[: (i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0)
            if gdt == x.dtype:
                torch.mm(a[i0:i1], xg[j0:j1].T, out=tile)
            else:
                tile.copy_(torch.mm(a[i0:i1], xg[j0:j1].T))
            if shift:
                tile.sub_(shift)
            tile.exp2_()
            diag = i0 == j0
            if diag:  # whole tile computed: drop the a == b terms, both triangles kept
                tile.diagonal().zero_()
                s_diag = s_diag + tile.sum()
            else:
                s_off = s_off + tile.sum()
            if grad:
                if bwd_dtype == x.dtype:
                    acc[i0:i1].addmm_(tile, x[j0:j1])
                    if not diag:
                        acc[j0:j1].addmm_(tile.T, x[i0:i1])
                else:
                    tb = tile.to(bwd_dtype)
                    acc[i0:i1] += torch.mm(tb, xb[j0:j1])
                    if not diag:
                        acc[j0:j1] += torch.mm(tb.T, xb[i0:i1])
    s = s_off + 0.5 * s_diag
    if grad:
        acc.mul_((2.0 * t) / s)
    return torch.log(s) + shift * math.log(2.0), acc


def _run(x: torch.Tensor, t: float, grad: bool, cfg: dict):
    # autocast off: the Gram tile feeds an exponential and must stay in the input precision
    with torch.autocast(x.device.type, enabled=False), _onednn_matmuls(cfg["onednn"]):
        return _tiled(
            x,
            t,
            block=cfg["block"],
            grad=grad,
            bwd_dtype=cfg["bwd_dtype"],
            gram_dtype=cfg.get("gram_dtype"),
        )


def _default_config(x: torch.Tensor) -> dict:
    if x.device.type == "cpu":
        fast = x.dtype == torch.float32 and _FAST_BF16
        return {"block": _BLOCK_CPU, "bwd_dtype": x.dtype, "onednn": fast}
    return {"block": _BLOCK_CUDA, "bwd_dtype": x.dtype, "onednn": False}


def _pairwise(log_s: torch.Tensor, n: int, t: float) -> tuple[torch.Tensor, float | torch.Tensor]:
    """DirectAU: U = ln S - 2t - ln(n(n-1)/2); dU/d ln S = 1."""
    return log_s - (2.0 * t + math.log(n * (n - 1) / 2.0)), 1.0


def _tril(log_s: torch.Tensor, n: int, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MAWU's quirk: V = ln((e^-2t S + K e^-2t) / n^2), K = n(n+1)/2 constant entries;
    dV/d ln S = S / (S + K)."""
    log_k = math.log(n * (n + 1) / 2.0)
    value = torch.logaddexp(log_s, log_s.new_tensor(log_k)) - (2.0 * t + 2.0 * math.log(n))
    return value, torch.sigmoid(log_s - log_k)


_FORMS = {"pairwise": _pairwise, "tril": _tril}


class _Uniformity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t, cfg, form):
        log_s, g = _run(x, t, True, cfg)
        value, scale = _FORMS[form](log_s, x.shape[0], t)
        ctx.save_for_backward(g.mul_(scale))
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (g,) = ctx.saved_tensors
        return g * grad_out, None, None, None


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log mean_{a<b} exp(-t ||x_a - x_b||^2) over the rows of L2-normalised ``x`` (n, d)."""
    return _uniformity(x, t)


def uniformity_tril(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """MAWU's uniformity of L2-normalised rows ``x`` (n, d), its ``tril`` constant term kept:

    log mean over the full n x n matrix of exp(-t (2 - 2 tril(X X^T, -1))). The diagonal and the
    upper triangle are zeroed by ``tril`` and so add n(n+1)/2 constant entries exp(-2t), so
    V = ln(e^-2t (S + n(n+1)/2) / n^2) with S = sum_{a<b} exp(2t <x_a, x_b>), the sum the tiled
    pairwise uniformity computes; dV/dx = S/(S + n(n+1)/2) d ln S/dx. One row: V = -2t (the 1 x 1
    matrix is one constant entry), zero gradient. Same machinery, cost and gradient convention
    as :func:`uniformity` (the function of the dot products, differentiated with x free).
    """
    if x.dim() == 2 and x.shape[0] == 0:
        raise ValueError("uniformity_tril needs at least one row (the mean of nothing)")
    return _uniformity(x, t, form="tril")


def _uniformity(
    x: torch.Tensor, t: float = 2.0, form: str = "pairwise", **overrides
) -> torch.Tensor:
    """``uniformity`` (or MAWU's ``form="tril"``) with the knobs (block, gram_dtype, bwd_dtype,
    onednn) overridable."""
    if x.dim() != 2:
        raise ValueError(f"uniformity expects a 2-D tensor (n, d), got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        # pairwise: no pair, defined as 0; tril: one constant entry, -2t. Zero gradient, still
        # attached to the graph
        return (x * 0).sum() - (2.0 * float(t) if form == "tril" else 0.0)
    cfg = {**_default_config(x), **overrides}
    x = x.contiguous()
    if torch.is_grad_enabled() and x.requires_grad:
        return _Uniformity.apply(x, float(t), cfg, form)
    log_s, _ = _run(x, float(t), False, cfg)
    return _FORMS[form](log_s, x.shape[0], float(t))[0]
