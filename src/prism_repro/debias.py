"""The popularity-debiasing baselines of the paper's Figure 9 (appendix D.2): ReSN, IPL and MACR.

Pure parts only: two regularisers (functions of encoder outputs and ids) and the losses that add
them to BPR / DirectAU, the MACR model (an encoder with two extra one-dimensional branches and a
counterfactual ranking score) and MACR's training loss. The registry (:mod:`prism_repro.registry`:
losses ``resn``, ``auresn``, ``ipl``, ``macr``) names these functions and declares what each
needs from the engine; the released / official forms are variant keys (``resn_form``,
``ipl_form``, ``macr_c``).

* **ReSN** (Lin et al., WSDM'25, "How Do Recommendation Models Amplify Popularity Bias? An
  Analysis from the Spectral Perspective"; official code LIN452/ReSN:src/models/recommenders.py)
  penalises the largest singular value of the batch score matrix S = U V^T through a one-step
  power-iteration estimate ||S v||^2, v = S^T 1 / ||S^T 1||. Two forms:

  - ``released`` (snap-research/PRISM:losses.py ``ReSN``): S = U V^T itself (no sigmoid) and the
    gradient flows through v, i.e. ||U V^T V U^T 1||^2 / ||V U^T 1||^2; computed without forming S.
  - ``official`` (LIN452/ReSN): S = sigmoid(U V^T) and v is a constant (stop-gradient).

* **IPL** (Liu et al., SIGIR'23, "Popularity Debiasing from Exposure to Interaction in
  Collaborative Filtering"; official code UnitDan/IPL:trainer.py ``ipl_loss``) asks the predicted
  interactions of an item, c_i = sum over its (user, item) pairs of sigmoid(s_ui), to grow as
  d_i^(2 - gamma) with its train degree d_i: the penalty is the standard deviation over all items
  of r_i = c_i / d_i^(2 - gamma). ``batch`` form (snap-research/PRISM:losses.py ``IPL``): the pairs
  are the mini-batch's positives; ``epoch`` form (UnitDan/IPL): all training pairs.

* **MACR** (Wei et al., KDD'21, "Model-Agnostic Counterfactual Reasoning for Eliminating
  Popularity Bias in Recommender System"; official code weitianxin/MACR:macr_mf/model.py) adds a
  user branch y_u = w_u . u and an item branch y_i = w_i . i to a matching model y_k = <u, i>;
  training fits the fused score y_k sigmoid(y_i) sigmoid(y_u) and both branches with BCE; ranking
  uses the counterfactual score (y_k - c) sigmoid(y_i) sigmoid(y_u), which removes the item's
  direct (popularity) effect. c is chosen on validation (the official code sweeps it after
  training, e.g. 0..60, weitianxin/MACR:macr_mf/command).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from prism_repro.losses import bpr_loss, directau_loss
from prism_repro.models import Encoder, unseeded

__all__ = [
    "MACR_C_CHOICES",
    "bpr_resn_loss",
    "directau_resn_loss",
    "bpr_ipl_loss",
    "resn_inputs",
    "ipl_inputs",
    "ipl_defaults",
    "RESN_FORMS",
    "IPL_FORMS",
    "IPL_GAMMAS",
    "IPL_DEFAULT_GAMMA",
    "MACR_C_GRID",
    "resn_penalty",
    "ipl_penalty",
    "ipl_gamma",
    "macr_scores",
    "macr_loss",
    "MACR",
]

RESN_FORMS = ("released", "official")
IPL_FORMS = ("batch", "epoch")

# IPL's gamma per dataset: UnitDan/IPL:configs/dataset_config.py (the released PRISM code
# uses the same values, snap-research/PRISM:train.py ``Trainer.__init__``).
IPL_GAMMAS = {"MovieLens1M": 1.826, "Gowalla": 1.285, "Yelp2018": 1.552, "AmazonBook": 1.446}
# Datasets with no published gamma (the synthetic one): the middle of the published range.
IPL_DEFAULT_GAMMA = 1.5

# c values tried on validation (weitianxin/MACR:macr_mf/command sweeps c from 0 to 60).
MACR_C_GRID = tuple(float(c) for c in range(0, 61, 5))
# variant key macr_c: chosen on validation from MACR_C_GRID (official), or the released PRISM
# code's fixed c = 1 (snap-research/PRISM:losses.py ``MACRLoss``)
MACR_C_CHOICES = {"sweep": MACR_C_GRID, "fixed": (1.0,)}


# MACR's validation of every c in one-pass units: the 13 c share one matrix product and masking
# per user chunk and each adds an offset and a top-k (MACR.ranking_offsets); measured 7.2-8.2
# passes on Gowalla-sized tensors (benchmarks/bench_macr_validation.py, 2-core Xeon AVX-512,
# 2026-11-30), against 13 when each c is a full pass.
MACR_VALIDATION_PASSES = 8.0


def validation_passes(loss: str) -> float:
    """Validation cost per epoch under the default variant, in full passes: MACR scores every c
    of its grid, the rest rank once."""
    return MACR_VALIDATION_PASSES if loss == "macr" else 1.0


def resn_penalty(users: torch.Tensor, items: torch.Tensor, form: str = "released") -> torch.Tensor:
    """ReSN's estimate of the squared largest singular value of the (users x items) score matrix.

    ``users`` (n_u, d) and ``items`` (n_i, d) are encoder outputs; the engine passes the batch's
    distinct users and items (the released code) or, for the official form, all items.
    """
    if form not in RESN_FORMS:
        raise ValueError(f"unknown ReSN form {form!r}; choose from {RESN_FORMS}")
    if users.dim() != 2 or items.dim() != 2 or users.size(1) != items.size(1):
        raise ValueError(
            f"users and items must be (n, d) with one d, got {tuple(users.shape)} and "
            f"{tuple(items.shape)}"
        )
    if form == "released":
        # x = S^T 1 = V (U^T 1); S x = U (V^T x): two matrix-vector products, S never formed
        x = items @ users.sum(0)
        sx = users @ (items.t() @ x)
        return sx.pow(2).sum() / x.pow(2).sum().clamp_min(torch.finfo(x.dtype).tiny)
    p = torch.sigmoid(users @ items.t())
    v = p.sum(0)
    v = (v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)).detach()
    return (p @ v).pow(2).sum()


def resn_inputs(hparams: dict) -> frozenset[str]:
    """What a ReSN loss reads besides the base loss's inputs: the batch's distinct rows, and all
    items for the official form."""
    form = hparams["form"]
    if form not in RESN_FORMS:
        raise ValueError(f"unknown ReSN form {form!r}; choose from {RESN_FORMS}")
    return frozenset({"unique_rows"} if form == "released" else {"unique_rows", "all_items"})


def _resn_term(batch, form: str) -> torch.Tensor:
    items = batch.items_unique if form == "released" else batch.all_items
    return resn_penalty(batch.users_unique, items, form)


def bpr_resn_loss(batch, resn_weight: float = 1e-4, form: str = "released") -> torch.Tensor:
    """BPR + resn_weight * ReSN penalty (registry loss ``resn``)."""
    return bpr_loss(batch) + resn_weight * _resn_term(batch, form)


def directau_resn_loss(
    batch, gamma: float = 1.0, resn_weight: float = 1e-4, form: str = "released"
) -> torch.Tensor:
    """DirectAU + resn_weight * ReSN penalty (registry loss ``auresn``)."""
    return directau_loss(batch, gamma=gamma) + resn_weight * _resn_term(batch, form)


def ipl_gamma(dataset: str) -> float:
    """IPL's published gamma for a dataset; :data:`IPL_DEFAULT_GAMMA` for any other."""
    return IPL_GAMMAS.get(dataset, IPL_DEFAULT_GAMMA)


def ipl_defaults(dataset: str, backbone: str = "mf") -> dict:
    """IPL's dataset-specific hyper-parameter (registry ``defaults_for``): its gamma."""
    return {"ipl_gamma": ipl_gamma(dataset)}


def ipl_inputs(hparams: dict) -> frozenset[str]:
    """What an IPL loss reads besides BPR's: train degrees, and the batch's positive items
    (``batch`` form) or every training pair's score (``epoch`` form)."""
    form = hparams["form"]
    if form not in IPL_FORMS:
        raise ValueError(f"unknown IPL form {form!r}; choose from {IPL_FORMS}")
    return frozenset({"item_degree", "pos_items" if form == "batch" else "train_pairs"})


def bpr_ipl_loss(
    batch, ipl_weight: float = 0.1, ipl_gamma: float = IPL_DEFAULT_GAMMA, form: str = "batch"
) -> torch.Tensor:
    """BPR + ipl_weight * IPL regulariser (registry loss ``ipl``)."""
    if form == "batch":
        items, scores = batch.pos_items, (batch.user * batch.pos).sum(-1)
    else:
        items, scores = batch.train_items, batch.train_scores
    return bpr_loss(batch) + ipl_weight * ipl_penalty(items, scores, batch.item_degree, ipl_gamma)


def ipl_penalty(
    items: torch.Tensor, scores: torch.Tensor, item_degree: torch.Tensor, gamma: float
) -> torch.Tensor:
    """std over all items of r_i = c_i / d_i^(2 - gamma), c_i = sum of sigmoid(score) of i's pairs.

    ``items`` (P,) and ``scores`` (P,) describe the scored (user, item) pairs (the batch's
    positives, or every training pair); ``item_degree`` (num_items,) the train degrees. Items in
    no pair count with r_i = 0, as in both released forms; an item of degree 0 has no pair to
    count and gets r_i = 0 too (released: 0 / 0). ``torch.std``'s default (n - 1) normaliser,
    as the released code.
    """
    if items.shape != scores.shape or items.dim() != 1:
        raise ValueError(
            f"items and scores must be matching 1-D tensors, got {tuple(items.shape)} and "
            f"{tuple(scores.shape)}"
        )
    if item_degree.dim() != 1 or item_degree.numel() < 2:
        raise ValueError("item_degree must be 1-D over at least two items")
    counts = torch.zeros(item_degree.numel(), dtype=scores.dtype, device=scores.device)
    counts = counts.index_add(0, items, torch.sigmoid(scores))
    degree = item_degree.to(scores.dtype)
    seen = degree > 0
    ratio = torch.where(seen, counts / torch.where(seen, degree, 1.0).pow(2.0 - gamma), 0.0)
    return ratio.std()


def macr_scores(
    match: torch.Tensor, user_logit: torch.Tensor, item_logit: torch.Tensor, c: float = 0.0
) -> torch.Tensor:
    """MACR's score (y_k - c) sigmoid(y_i) sigmoid(y_u); c = 0 is the factual (training) score.

    Broadcasts: ``match`` y_k = <u, i>, ``user_logit`` y_u and ``item_logit`` y_i of one shape.
    """
    return (match - c) * torch.sigmoid(item_logit) * torch.sigmoid(user_logit)


def macr_loss(batch, alpha: float = 1e-3, beta: float = 1e-3) -> torch.Tensor:
    """L_O + alpha L_I + beta L_U, each a binary cross-entropy (positives 1, negatives 0).

    L_O on the fused score y_k sigmoid(y_i) sigmoid(y_u) (read as a logit), L_I on the item
    branch y_i, L_U on the user branch y_u; alpha = beta = 1e-3 are MACR's defaults
    (weitianxin/MACR:macr_mf/parse.py). A positive and its negatives share the user, so L_U
    labels the same y_u once 1 and once per negative 0, as the official code does. Each term is
    the mean over positives plus the mean over (positive, negative) pairs (with one negative,
    the official per-pair sum).
    """
    if batch.user_logit is None or batch.pos_logit is None or batch.neg_logit is None:
        raise ValueError("MACR's loss needs the branch logits (user_logit, pos_logit, neg_logit)")
    pos_match = (batch.user * batch.pos).sum(-1)  # (B,)
    neg_match = (batch.user.unsqueeze(1) * batch.neg).sum(-1)  # (B, k)
    user_logit = batch.user_logit
    pos_fused = macr_scores(pos_match, user_logit, batch.pos_logit)
    neg_fused = macr_scores(neg_match, user_logit[:, None], batch.neg_logit)

    def bce(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        # -log sigmoid(pos) - log(1 - sigmoid(neg)), overflow-free
        return F.softplus(-pos).mean() + F.softplus(neg).mean()

    fused = bce(pos_fused, neg_fused)
    item = bce(batch.pos_logit, batch.neg_logit)
    user = bce(user_logit, user_logit[:, None].expand_as(batch.neg_logit))
    return fused + alpha * item + beta * user


class MACR(Encoder):
    """MACR around any encoder: the encoder's outputs, a user and an item branch, counterfactual
    ranking.

    The wrapped encoder keeps its ID tables (PRISM initialisation and weight decay act on them as
    for the plain encoder) and its outputs (``forward`` / ``encode``, used by the losses and the
    embedding-norm figures). The branches are bias-free ``Linear(d, 1)`` maps (official code:
    a (d, 1) weight, Xavier-normal). ``ranking_outputs`` returns rows whose dot product is the
    counterfactual score, so the ordinary full-ranking code ranks MACR unchanged:
    [u sigmoid(y_u), -c sigmoid(y_u)] . [i sigmoid(y_i), sigmoid(y_i)] = (y_k - c) sigmoid(y_i)
    sigmoid(y_u). c is a buffer (saved with the model); ``inference_options`` lists the values
    validation chooses from.
    """

    def __init__(
        self,
        base: Encoder,
        c_grid: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
        c_choice: str = "sweep",
    ):
        """``c_grid``: the c values validation chooses from; default the ``c_choice`` entry of
        :data:`MACR_C_CHOICES` (``sweep``: 0, 5, ..., 60; ``fixed``: the released c = 1)."""
        nn.Module.__init__(self)
        if c_grid is None:
            if c_choice not in MACR_C_CHOICES:
                raise ValueError(
                    f"unknown MACR c choice {c_choice!r}; choose from {MACR_C_CHOICES}"
                )
            c_grid = MACR_C_CHOICES[c_choice]
        if not c_grid or not all(math.isfinite(float(c)) for c in c_grid):
            raise ValueError(f"MACR needs a non-empty grid of finite c values, got {c_grid!r}")
        self.base = base
        self.num_users, self.num_items, self.dim = base.num_users, base.num_items, base.dim
        self.user_branch = unseeded(nn.Linear, base.dim, 1, bias=False)
        self.item_branch = unseeded(nn.Linear, base.dim, 1, bias=False)
        for branch in (self.user_branch, self.item_branch):
            nn.init.xavier_normal_(branch.weight, generator=generator)
        self.c_grid = tuple(float(c) for c in c_grid)
        self.register_buffer("c", torch.tensor(self.c_grid[0]))

    # the wrapped encoder's tables and row gathering
    @property
    def user_emb(self) -> nn.Embedding:
        return self.base.user_emb

    @property
    def item_emb(self) -> nn.Embedding:
        return self.base.item_emb

    @property
    def gathers_rows(self) -> bool:
        return self.base.gathers_rows

    def set_graph(self, edges: torch.Tensor) -> None:
        self.base.set_graph(edges)

    def forward(self):
        return self.base()

    def encode(self, users, items):
        return self.base.encode(users, items)

    def branch_logits(
        self, user_rows: torch.Tensor, item_rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_u, y_i) for encoder output rows: (n_u,) and (n_i,)."""
        return self.user_branch(user_rows).squeeze(-1), self.item_branch(item_rows).squeeze(-1)

    def ranking_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.base()
        user_logit, item_logit = self.branch_logits(users, items)
        su, si = torch.sigmoid(user_logit)[:, None], torch.sigmoid(item_logit)[:, None]
        return torch.cat([users * su, -self.c * su], 1), torch.cat([items * si, si], 1)

    def ranking_offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every c at once: per user, (y_k - c) sigmoid(y_i) sigmoid(y_u) orders items as
        u . i sigmoid(y_i) - c sigmoid(y_i) does (sigmoid(y_u) > 0 is one factor per user)."""
        users, items = self.base()
        si = torch.sigmoid(self.item_branch(items).squeeze(-1))
        grid = torch.tensor(self.c_grid, dtype=si.dtype, device=si.device)
        return users, items * si[:, None], -grid[:, None] * si

    def inference_options(self) -> list[dict]:
        return [{"c": c} for c in self.c_grid]

    @torch.no_grad()
    def set_inference(self, c: float) -> None:
        self.c.fill_(float(c))
