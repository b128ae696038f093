"""The four training losses as pure functions of encoder outputs, plus a registry.

Each loss takes a :class:`LossBatch` and its own hyper-parameters; :data:`LOSSES` declares what a
loss needs (negatives, margins) so the training engine can prepare the batch without knowing
the formulas. Formulas follow the paper and the released code (snap-research/PRISM:losses.py,
train.py), with the reference implementations cited per loss; differences are listed in
docs/paper-vs-code.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from prism_repro import registry
from prism_repro.kernels import gathered_dot, unit_rows
from prism_repro.uniformity import uniformity, uniformity_tril

__all__ = [
    "LossBatch",
    "LOSSES",
    "compute_loss",
    "INPUT_FIELDS",
    "wrap_for_loss",
    "bpr_loss",
    "ssm_loss",
    "directau_loss",
    "mawu_loss",
    "negatives",
    "uniformity_dot",
    "MawuMargins",
    "MAWU_GAMMAS",
    "MAWU_DEFAULT_GAMMAS",
    "mawu_gammas",
    "RELEASED_SSM_NEGATIVES",
]

# snap-research/PRISM:run_train_prism.sh uses NEG_RATIOS=(20) for SSM; the paper says 10.
RELEASED_SSM_NEGATIVES = 20


@dataclass
class LossBatch:
    """Encoder outputs for one mini-batch of positive interactions.

    ``users_unif`` / ``items_unif`` are the rows the uniformity terms spread apart. The released
    PRISM code passes the unique users/items of the batch's edge set; official DirectAU and
    MAWU pass the per-interaction rows (duplicates included). The engine chooses.

    Negatives come either as ``neg`` (B, k, d) or indexed: ``neg_rows`` (m, d) holds each
    distinct item once and negative l of positive j is ``neg_rows[neg_index[j, l]]``. Losses
    declared ``indexed_negatives`` use the indexed form directly (SSM normalises each distinct
    row once); the others read :func:`negatives`, which gathers the (B, k, d) block.
    """

    user: torch.Tensor  # (B, d)
    pos: torch.Tensor  # (B, d)
    neg: torch.Tensor | None = None  # (B, k, d)
    neg_rows: torch.Tensor | None = None  # (m, d)
    neg_index: torch.Tensor | None = None  # (B, k) ids into neg_rows
    users_unif: torch.Tensor | None = None  # (n_u, d)
    items_unif: torch.Tensor | None = None  # (n_i, d)
    user_margin: torch.Tensor | None = None  # (B,)
    item_margin: torch.Tensor | None = None  # (B,)
    # inputs of the debiasing baselines (prism_repro.debias), filled when a loss asks for them
    users_unique: torch.Tensor | None = None  # (n_u, d) the batch's distinct users
    items_unique: torch.Tensor | None = None  # (n_i, d) its distinct items (negatives included)
    all_items: torch.Tensor | None = None  # (num_items, d) every item's output
    pos_items: torch.Tensor | None = None  # (B,) item ids of the positives
    item_degree: torch.Tensor | None = None  # (num_items,) train degrees
    train_items: torch.Tensor | None = None  # (E,) item id of every training pair
    train_scores: torch.Tensor | None = None  # (E,) dot-product score of every training pair
    user_logit: torch.Tensor | None = None  # (B,) MACR's user branch
    pos_logit: torch.Tensor | None = None  # (B,) MACR's item branch, positives
    neg_logit: torch.Tensor | None = None  # (B, k) MACR's item branch, negatives

    def has_negatives(self) -> bool:
        return self.neg is not None or (self.neg_rows is not None and self.neg_index is not None)


# What a loss can ask the engine for beyond the (user, positive) rows (registry ``LossEntry``:
# negatives, needs_margins, needs_uniformity_rows, inputs, inputs_for), and the LossBatch
# fields that carry it.
INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "negatives": ("neg",),  # or the indexed form (neg_rows, neg_index): has_negatives()
    "uniformity_rows": ("users_unif", "items_unif"),
    "margins": ("user_margin", "item_margin"),
    "unique_rows": ("users_unique", "items_unique"),
    "all_items": ("all_items",),
    "pos_items": ("pos_items",),
    "item_degree": ("item_degree",),
    "train_pairs": ("train_items", "train_scores"),
    "branch_logits": ("user_logit", "pos_logit", "neg_logit"),
}


def negatives(batch: LossBatch) -> torch.Tensor:
    """The (B, k, d) negative block, gathered from the indexed form where that is what was given."""
    if batch.neg is not None:
        return batch.neg
    b, k = batch.neg_index.shape
    rows = batch.neg_rows
    return rows.index_select(0, batch.neg_index.reshape(-1)).view(b, k, rows.shape[1])


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (unit_rows(a) * unit_rows(b)).sum(-1)


def bpr_loss(batch: LossBatch) -> torch.Tensor:
    """-mean log sigmoid(s_pos - s_neg) over every (positive, negative) pair; dot-product scores.

    Rendle et al. 2009; snap-research/PRISM:losses.py ``BPRLoss``. ``logsigmoid`` keeps large
    score gaps finite.
    """
    pos = (batch.user * batch.pos).sum(-1)  # (B,)
    # (B, k); elementwise beats bmm of (1 x d)(d x k)
    neg = (batch.user.unsqueeze(1) * negatives(batch)).sum(-1)
    return -F.logsigmoid(pos[:, None] - neg).mean()


def ssm_loss(batch: LossBatch, temperature: float = 0.2) -> torch.Tensor:
    """Sampled softmax over one positive and k sampled negatives, cosine scores / temperature.

    Wu et al. (TOIS 2024, wujcan/SSM-TensorFlow); snap-research/PRISM:losses.py ``SSMLoss``
    hard-codes tau = 0.2. Written as logsumexp - positive logit, equal to the released
    -log(exp(pos)/sum exp) but without overflow.

    Indexed negatives (``neg_rows``, ``neg_index``): each distinct row is normalised once and
    the (B, k) cosines come from one sampled product (:func:`prism_repro.kernels.gathered_dot`)
    instead of normalising and multiplying a (B, k, d) block; same value and gradient.
    """
    user = unit_rows(batch.user)
    pos = (user * unit_rows(batch.pos)).sum(-1)  # (B,)
    if batch.neg is not None:
        neg = (user[:, None, :] * unit_rows(batch.neg)).sum(-1)  # (B, k)
    else:
        neg = gathered_dot(user, unit_rows(batch.neg_rows), batch.neg_index)
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def _uniformity_or_zero(x: torch.Tensor) -> torch.Tensor:
    # Fewer than two rows have no pair to push apart (pdist would give the mean of nothing: NaN).
    if x.size(0) < 2:
        return x.new_zeros(())
    return uniformity(unit_rows(x), t=2.0)


def directau_loss(batch: LossBatch, gamma: float = 1.0) -> torch.Tensor:
    """Alignment of normalised positive pairs + gamma * mean of user and item uniformity (t=2).

    Wang et al. KDD'22 (THUwangcy/DirectAU:recbole/model/general_recommender/directau.py);
    snap-research/PRISM:losses.py ``AlignmentLoss`` with ``--reg_types uniformity``.
    """
    u, i = unit_rows(batch.user), unit_rows(batch.pos)
    align = (u - i).pow(2).sum(-1).mean()
    unif = (_uniformity_or_zero(batch.users_unif) + _uniformity_or_zero(batch.items_unif)) / 2
    return align + gamma * unif


def uniformity_dot(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """MAWU's uniformity: log mean over the full n x n matrix of exp(-t (2 - 2 tril(C, -1))).

    C is the cosine matrix. ``tril(., -1)`` zeroes the diagonal and the upper triangle, so those
    n(n+1)/2 entries add the constant exp(-2t) each instead of being excluded: the value is not
    the pairwise uniformity of DirectAU, and the real pairs get weight 1/n^2 rather than
    2/(n(n-1)). Kept on purpose: it is what both psm1206/MAWU:recbole/model/general_recommender/
    mawu.py ``uniformity_dot`` and snap-research/PRISM:losses.py ``MAWULoss`` compute.

    Computed without the n x n matrix by the tiled machinery of DirectAU's uniformity
    (:func:`prism_repro.uniformity.uniformity_tril`): the strict lower triangle's sum plus the
    n(n+1)/2 constant terms in closed form.
    """
    return uniformity_tril(unit_rows(x), t)


def _broadcast_cos_mean(theta: torch.Tensor, widen: torch.Tensor) -> torch.Tensor:
    """mean over all (j, l) of cos(clamp(theta[l] + widen[j], 0, pi)), without the (B, B) matrix.

    theta in (0, pi] and widen = 1 - sigmoid(m) in [0, 1) keep every sum >= 0, so only the upper
    clamp acts: entry (j, l) is -1 where theta[l] >= pi - widen[j] and otherwise
    cos(theta[l]) cos(widen[j]) - sin(theta[l]) sin(widen[j]). With theta sorted, row j's sum is
    two prefix sums and a count, O(B log B).
    """
    b = theta.numel()
    ordered = torch.sort(theta).values
    cum_cos = F.pad(torch.cumsum(torch.cos(ordered), 0), (1, 0))
    cum_sin = F.pad(torch.cumsum(torch.sin(ordered), 0), (1, 0))
    below = torch.searchsorted(ordered.detach(), (math.pi - widen).detach())  # unclamped count
    rows = torch.cos(widen) * cum_cos[below] - torch.sin(widen) * cum_sin[below] - (b - below)
    return rows.sum() / (b * b)


def mawu_loss(
    batch: LossBatch,
    gamma_user: float = 0.5,
    gamma_item: float = 0.5,
    margin_broadcast: bool = False,
) -> torch.Tensor:
    """Margin-aware alignment + weighted uniformity (Park et al. CIKM'23).

    The angle between user and positive item is widened by 1 - sigmoid(m_u + m_i) before taking
    its cosine, so popular pairs (larger learned margins) are pulled less hard. Clamps as in
    psm1206/MAWU:recbole/model/general_recommender/mawu.py and snap-research/PRISM:losses.py.

    ``margin_broadcast=False`` (default, the paper's formula): pair j's angle gets pair j's
    margin, -mean_j cos(theta_j + 1 - sigmoid(m_j)). ``True``: what both released codes compute;
    their margins are (B, 1) tensors added to the (B,) angle, which broadcasts to a (B, B)
    matrix, so every angle is widened by every pair's margin:
    -mean_{j,l} cos(clamp(theta_l + 1 - sigmoid(m_j), 0, pi)) (evaluated in O(B log B)).
    """
    cos = _cosine(batch.user, batch.pos).clamp(-1 + 1e-7, 1 - 1e-7)
    margin = batch.user_margin.reshape(-1) + batch.item_margin.reshape(-1)
    theta, widen = torch.arccos(cos), 1 - torch.sigmoid(margin)
    if margin_broadcast:
        align = -_broadcast_cos_mean(theta, widen)
    else:
        align = -torch.cos((theta + widen).clamp(0.0, math.pi)).mean()
    unif = gamma_user * uniformity_dot(batch.users_unif) + gamma_item * uniformity_dot(
        batch.items_unif
    )
    return align + unif


class MawuMargins(nn.Module):
    """Learned per-user and per-item margins for MAWU.

    Xavier-uniform initialised as in snap-research/PRISM:models.py (official MAWU uses
    Xavier-normal). The released loop clamps both tables to [0, 1] right after computing the
    loss and before ``backward``; call :meth:`clamp_` at that point to match it.
    """

    def __init__(self, num_users: int, num_items: int, generator: torch.Generator | None = None):
        super().__init__()
        # skip_init: the default constructor would draw from the global RNG
        self.user_margin = skip_init(nn.Embedding, num_users, 1)
        self.item_margin = skip_init(nn.Embedding, num_items, 1)
        for table in (self.user_margin, self.item_margin):
            nn.init.xavier_uniform_(table.weight, generator=generator)

    def forward(
        self, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_margin(users).squeeze(-1), self.item_margin(items).squeeze(-1)

    @torch.no_grad()
    def clamp_(self) -> MawuMargins:
        self.user_margin.weight.clamp_(0.0, 1.0)
        self.item_margin.weight.clamp_(0.0, 1.0)
        return self


# MAWU's own recommended gammas (psm1206/MAWU:README.md run commands), keyed by
# (dataset, backbone); MAWU's gamma1 weighs users, gamma2 items.
MAWU_DEFAULT_GAMMAS = {"gamma_user": 0.5, "gamma_item": 0.5}  # psm1206/MAWU MAWU.yaml
MAWU_GAMMAS: dict[tuple[str, str], dict[str, float]] = {
    ("Gowalla", "mf"): {"gamma_user": 2.6, "gamma_item": 1.4},
    ("Gowalla", "lightgcn"): {"gamma_user": 2.4, "gamma_item": 1.6},
    ("Yelp2018", "mf"): {"gamma_user": 0.8, "gamma_item": 0.6},
    ("Yelp2018", "lightgcn"): {"gamma_user": 1.2, "gamma_item": 0.6},
}


def mawu_gammas(dataset: str, backbone: str = "mf") -> dict[str, float]:
    """Published MAWU gammas for a dataset and backbone, with documented fall-backs.

    nlmf has no published value and shares MF's ID-embedding setting, so it takes MF's.
    MovieLens1M and AmazonBook have none (the PRISM paper tuned MAWU on MovieLens but did not
    publish the values), so they take MAWU's defaults 0.5 / 0.5.
    """
    key = (dataset, "mf" if backbone == "nlmf" else backbone)
    return dict(MAWU_GAMMAS.get(key, MAWU_DEFAULT_GAMMAS))


# The registry of losses (what each needs, its defaults, its grid parameters) is
# prism_repro.registry.LOSSES; its entries name the functions above.
LOSSES = registry.LOSSES


def compute_loss(name: str, batch: LossBatch, **hparams) -> torch.Tensor:
    """Evaluate loss ``name`` on ``batch``; unknown hyper-parameters and missing inputs fail loudly."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    spec = LOSSES[name]
    unknown = set(hparams) - set(spec.defaults)
    if unknown:
        raise TypeError(f"loss {name!r} takes {sorted(spec.defaults)}, got {sorted(unknown)}")
    missing = [
        f"{need} ({', '.join(f'batch.{f}' for f in INPUT_FIELDS[need])})"
        for need in sorted(spec.needs(hparams))
        if (not batch.has_negatives() if need == "negatives" else False)
        or (need != "negatives" and any(getattr(batch, f) is None for f in INPUT_FIELDS[need]))
    ]
    if missing:
        raise ValueError(f"loss {name!r} needs {'; '.join(missing)}")
    return spec.function()(batch, **{**spec.defaults, **hparams})


def wrap_for_loss(
    loss: str,
    encoder: nn.Module,
    generator: torch.Generator | None = None,
    settings: object | None = None,
) -> nn.Module:
    """The model loss ``loss`` trains: the encoder itself, or its registry ``model`` around it,
    given the options the registry takes from ``settings`` (an EngineConfig)."""
    entry = LOSSES[loss]
    if entry.model is None:
        return encoder
    options = {opt: getattr(settings, key) for opt, key in entry.model_options.items() if settings}
    return registry.resolve(entry.model)(encoder, generator=generator, **options)
