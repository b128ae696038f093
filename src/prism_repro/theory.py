"""The paper's theory (Section 3.2, Appendix C) as formulas; numpy only, no torch.

Notation as in the paper: B a mini-batch of interactions, E all training interactions, I the item
set, d the train degree of an item, eta the learning rate, lambda the weight-decay strength, gamma
the number of uniform negatives per positive (Appendix C.4; not DirectAU's gamma).

* Observation 1: P(i in B) = 1 - (1 - |B|/|E|)^d.
* Theorem 3.1 (full-table decay, a cosine alignment loss, plain gradient descent):
  E[d||i||^2] = E[||i||^2] eta lambda (eta lambda - 2) + P(i in B) E[eta^2 / ||i||^2 (1 - cos^2(u, i))].
* Corollary 1 (C.3, decay on the batch's rows only): both terms scaled by P(i in B).
* Corollary 2 (C.4, gamma distinct uniform negatives per positive):
  P(i in B) = 1 - (1 - |B|/|E|)^d (1 - gamma |B| / |I|).

Observation 1 treats the d interactions of an item as independently in the batch, each with
probability |B|/|E|. The exact inclusion probabilities of the two samplers used in practice are here
too: a batch of |B| distinct interactions (an epoch's shuffled slice: hypergeometric) and |B| draws
with replacement. Observation 1 is the first up to O(d^2 |B| / |E|^2); the second differs from it at
first order in |B|/|E| (for d = 1 it is 1 - (1 - 1/|E|)^|B| ~ 1 - exp(-|B|/|E|), not |B|/|E|).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

# The settings of Figure 7 (Appendix C.2). The paper gives "typical values" of the learning rate
# and weight decay and fixes "the dot product term" at 0.9 without saying which. Its picture (no
# change at tiny batches, the same positive change for every degree at full batches, a change that
# grows with degree in between) needs the decay term small against the gradient term:
# 2 lambda ||i||^2 / (eta (1 - cos^2)) << 1 (see ``figure7_regimes``). The paper's Figure 2 setting,
# eta 1e-3 with lambda 1e-6, does that under either reading of the 0.9; we read it as the term the
# theorem contains, (u.i)^2 / (||u||^2 ||i||^2) = cos^2 = 0.9.
FIG7_LR = 1e-3
FIG7_WEIGHT_DECAY = 1e-6
FIG7_COS_SQ = 0.9
FIG7_SQ_NORM = 1.0


def _fraction(batch_fraction):
    f = np.asarray(batch_fraction, float)
    if np.any((f < 0) | (f > 1)):
        raise ValueError(f"batch fraction |B|/|E| must lie in [0, 1], got {batch_fraction}")
    return f


def inclusion_probability(degree, batch_fraction):
    """Observation 1: P(i in B) = 1 - (1 - |B|/|E|)^d for an item of degree d (broadcasts)."""
    return 1.0 - (1.0 - _fraction(batch_fraction)) ** np.asarray(degree, float)


def negative_fraction(negatives: float, batch_size, num_items: int):
    """P(i in B_-) = gamma |B| / |I| for gamma|B| distinct uniform negatives, capped at 1 (every
    item is a negative once gamma |B| >= |I|)."""
    return np.minimum(1.0, negatives * np.asarray(batch_size, float) / num_items)


def inclusion_probability_with_negatives(degree, batch_fraction, neg_fraction):
    """Corollary 2: P(i in B) = 1 - (1 - |B|/|E|)^d (1 - gamma |B| / |I|); ``neg_fraction`` is
    gamma |B| / |I| (``negative_fraction``)."""
    miss = (1.0 - _fraction(batch_fraction)) ** np.asarray(degree, float)
    return 1.0 - miss * (1.0 - np.asarray(neg_fraction, float))


def inclusion_probability_exact(degree, batch_size, num_edges: int, sampler: str):
    """Exact P(i in B) of an item with ``degree`` of the ``num_edges`` interactions, for a batch of
    ``batch_size`` distinct interactions (``sampler="shuffle"``: hypergeometric,
    1 - C(|E| - d, |B|) / C(|E|, |B|)) or of ``batch_size`` draws with replacement
    (``sampler="replacement"``: 1 - (1 - d/|E|)^|B|)."""
    d = np.asarray(degree, float)
    b = np.asarray(batch_size, float)
    n = float(num_edges)
    if sampler == "replacement":
        return 1.0 - (1.0 - d / n) ** b
    if sampler != "shuffle":
        raise ValueError(f"unknown sampler {sampler!r}; choose shuffle or replacement")
    d, b = np.broadcast_arrays(d, b)
    impossible = n - d - b < 0  # fewer interactions left than the batch takes: always in it
    log_miss = (
        gammaln(n - d + 1)
        - gammaln(np.maximum(n - d - b, 0) + 1)
        - gammaln(n + 1)
        + gammaln(n - b + 1)
    )
    return np.where(impossible, 1.0, -np.expm1(log_miss))


def decay_term(sq_norm, lr: float, weight_decay: float):
    """Theorem 3.1's first term: E[||i||^2] eta lambda (eta lambda - 2) (negative for 0 < eta lambda < 2)."""
    el = lr * weight_decay
    return np.asarray(sq_norm, float) * el * (el - 2.0)


def gradient_term(inclusion, growth, lr: float):
    """Theorem 3.1's second term: P(i in B) eta^2 E[(1 - cos^2(u, i)) / ||i||^2]; ``growth`` is the
    expectation E[(1 - cos^2(u, i)) / ||i||^2]."""
    return np.asarray(inclusion, float) * lr**2 * np.asarray(growth, float)


def expected_sq_norm_change(inclusion, sq_norm, growth, lr: float, weight_decay: float):
    """Theorem 3.1: expected change of ||i||^2 in one step of full-table decay."""
    return decay_term(sq_norm, lr, weight_decay) + gradient_term(inclusion, growth, lr)


def expected_sq_norm_change_batched(inclusion, sq_norm, growth, lr: float, weight_decay: float):
    """Corollary 1 (appendix C.3): with decay on the batch's rows only, both terms are scaled by
    P(i in B), so degree no longer weighs the gradient against the decay."""
    inc = np.asarray(inclusion, float)
    return inc * (decay_term(sq_norm, lr, weight_decay) + lr**2 * np.asarray(growth, float))


def expected_magnitude_change(
    degree,
    batch_fraction,
    lr: float = FIG7_LR,
    weight_decay: float = FIG7_WEIGHT_DECAY,
    sq_norm: float = FIG7_SQ_NORM,
    cos_sq: float = FIG7_COS_SQ,
):
    """Figure 7's map: Theorem 3.1 with Observation 1's P(i in B) and ||i||^2 = ``sq_norm``,
    cos^2(u, i) = ``cos_sq`` held fixed, so both expectations are plain values. Broadcasts."""
    if not 0.0 <= cos_sq <= 1.0:
        raise ValueError(f"cos^2 must lie in [0, 1], got {cos_sq}")
    growth = (1.0 - cos_sq) / sq_norm
    return expected_sq_norm_change(
        inclusion_probability(degree, batch_fraction), sq_norm, growth, lr, weight_decay
    )


def equilibrium_sq_norm(inclusion, one_minus_cos_sq, lr: float, weight_decay: float):
    """The ||i||^2 at which Theorem 3.1's expected change vanishes, with (1 - cos^2) held fixed:
    ||i||^4 = P(i in B) eta (1 - cos^2) / (lambda (2 - eta lambda)). Under full-table decay it grows
    with degree as P^(1/2); under batched decay (Corollary 1) P cancels and it does not."""
    el = lr * weight_decay
    return np.sqrt(np.asarray(inclusion, float) * lr * one_minus_cos_sq / (weight_decay * (2 - el)))


def figure7_regimes(
    lr: float,
    weight_decay: float,
    cos_sq: float,
    sq_norm: float = FIG7_SQ_NORM,
    degrees=(1.0, 1e3),
    fractions=(1e-5, 1.0),
    band=(0.01, 0.05),
) -> dict:
    """Numbers that say whether Figure 7's map shows the picture the paper describes.

    With ``z`` the map over log-spaced degrees and batch fractions and ``scale = max |z|``:
    ``bottom`` = max |z| over degrees at the smallest fraction / scale (no change: near 0);
    ``top_spread`` = (max - min) over degrees at the largest fraction / scale (alike: near 0) and
    ``top_min`` = min z there / scale (positive: > 0); ``band_spread`` = the smallest (max - min)
    over degrees / scale among fractions in ``band`` (a clear difference: large); ``positive`` =
    share of the map above 0; ``ratio`` = 2 lambda ||i||^2 / (eta (1 - cos^2)), the decay term
    against the largest gradient term (the picture needs it << 1).
    """
    d = np.logspace(np.log10(degrees[0]), np.log10(degrees[1]), 61)
    f = np.logspace(np.log10(fractions[0]), np.log10(fractions[1]), 61)
    z = expected_magnitude_change(d[None, :], f[:, None], lr, weight_decay, sq_norm, cos_sq)
    scale = float(np.abs(z).max())
    in_band = (f >= band[0]) & (f <= band[1])
    band_f = np.concatenate([f[in_band], band])
    zb = expected_magnitude_change(d[None, :], band_f[:, None], lr, weight_decay, sq_norm, cos_sq)
    return {
        "ratio": 2 * weight_decay * sq_norm / (lr * (1 - cos_sq) / sq_norm)
        if cos_sq < 1
        else np.inf,
        "bottom": float(np.abs(z[0]).max() / scale),
        "top_spread": float(np.ptp(z[-1]) / scale),
        "top_min": float(z[-1].min() / scale),
        "band_spread": float(np.ptp(zb, axis=1).min() / scale),
        "positive": float((z > 0).mean()),
    }


def shows_described_picture(regimes: dict, tol: float = 0.05, spread: float = 0.5) -> bool:
    """The paper's description of Figure 7, as thresholds on ``figure7_regimes``: near-zero change
    at the smallest batches, the same positive change at the largest (both within ``tol`` of the
    map's scale) and, for |B|/|E| in 0.01-0.05, a spread over degree of at least ``spread``."""
    return (
        regimes["bottom"] <= tol
        and regimes["top_spread"] <= tol
        and regimes["top_min"] > 0
        and regimes["band_spread"] >= spread
    )
