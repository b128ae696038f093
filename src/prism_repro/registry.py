"""One registry per axis of the paper's grid: losses, backbones, weight-decay modes, inits,
popularity groups. Everything else derives from these entries: the run-id grammar
(``runspec``), the grid (``grid``), the schema's allowed values (``config.load_schema``),
selection's columns, figure labels and colours, and the engine's batch preparation.

This module imports no torch, so the workflow (which reads it while building the DAG) stays
quick; an entry names its implementation as ``"module:attribute"``, imported when a run needs it.
Adding a loss: write its function, add a :class:`LossEntry` here (or call :func:`register_loss`),
list it in an experiment of ``config.yaml``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Param",
    "LossEntry",
    "BackboneEntry",
    "AxisEntry",
    "LOSSES",
    "BACKBONES",
    "DECAY_MODES",
    "INITS",
    "POPULARITY_GROUPS",
    "register_loss",
    "register_backbone",
    "loss_params",
    "resolve",
]


@dataclass(frozen=True)
class Param:
    """A loss hyper-parameter that is a grid axis and part of the run id.

    ``token`` prefixes its value in the id (DirectAU's gamma 2 -> ``directau-g2``). A param with
    ``default=None`` is optional: left out, the loss's ``defaults_for`` decides (MAWU's published
    gammas per dataset) and the id omits it.
    """

    name: str
    token: str
    default: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class LossEntry:
    """What the engine must prepare for a loss, and how the grid names it."""

    name: str
    label: str
    fn: str  # "module:function" taking (LossBatch, **hyper-parameters)
    batch_size: int  # the paper's batch size (interactions per batch)
    negatives: int = 0  # sampled negatives per positive (0: none)
    angle_based: bool = False  # depends on directions only (invariant to positive row rescaling)
    needs_margins: bool = False  # learned per-user/per-item margins (MAWU)
    needs_uniformity_rows: bool = False  # reads the batch's rows for a uniformity term
    # reads its negatives as rows + an index (LossBatch.neg_rows / neg_index), no (B, k, d) block
    indexed_negatives: bool = False
    params: tuple[Param, ...] = ()  # grid axes in the run id
    defaults: dict = field(default_factory=dict)  # every hyper-parameter the function takes
    # (dataset, backbone) -> hyper-parameters for params left unset (None); "module:function"
    defaults_for: str | None = None
    color: str = "0.3"
    # further inputs the loss reads (names of prism_repro.losses.INPUT_FIELDS), and
    # "module:function" (hyper-parameters) -> inputs that depend on them
    inputs: tuple[str, ...] = ()
    inputs_for: str | None = None
    # hyper-parameters taken from the engine's settings (variant keys): name -> EngineConfig field
    engine_params: dict = field(default_factory=dict)
    # "module:class" wrapping the encoder into the model the loss trains (MACR's branches), and
    # its keyword options taken from the engine's settings: option -> EngineConfig field
    model: str | None = None
    model_options: dict = field(default_factory=dict)

    def function(self) -> Callable:
        return resolve(self.fn)

    def needs(self, hparams: dict | None = None) -> frozenset[str]:
        """Every input the loss reads with these hyper-parameters (registry defaults filled in)."""
        needs = set(self.inputs)
        needs |= {"negatives"} if self.negatives else set()
        needs |= {"margins"} if self.needs_margins else set()
        needs |= {"uniformity_rows"} if self.needs_uniformity_rows else set()
        if self.inputs_for:
            needs |= set(resolve(self.inputs_for)({**self.defaults, **(hparams or {})}))
        return frozenset(needs)


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    label: str
    builder: str  # "module:class" of an Encoder
    color: str = "0.3"


@dataclass(frozen=True)
class AxisEntry:
    """A named value of a simple axis (decay mode, init, popularity group)."""

    name: str
    label: str
    color: str = "0.3"
    param: str | None = None  # the numeric setting that goes with it (weight_decay, alpha)


# Colour-blind-safe palette (Okabe & Ito) shared by the figures.
LOSSES: dict[str, LossEntry] = {}
BACKBONES: dict[str, BackboneEntry] = {}


def register_loss(entry: LossEntry) -> LossEntry:
    if entry.name in LOSSES or not entry.name.isidentifier() or "_" in entry.name:
        raise ValueError(f"loss name {entry.name!r} is taken or not a plain lower-case word")
    LOSSES[entry.name] = entry
    return entry


def register_backbone(entry: BackboneEntry) -> BackboneEntry:
    if entry.name in BACKBONES or not entry.name.isidentifier() or "_" in entry.name:
        raise ValueError(f"backbone name {entry.name!r} is taken or not a plain lower-case word")
    BACKBONES[entry.name] = entry
    return entry


register_loss(
    LossEntry(
        "bpr",
        "BPR",
        "prism_repro.losses:bpr_loss",
        batch_size=16384,
        negatives=1,
        color="#e69f00",
    )
)
register_loss(
    LossEntry(
        "ssm",
        "SSM",
        "prism_repro.losses:ssm_loss",
        batch_size=16384,
        negatives=10,  # the paper's 10; the released script uses 20 (variant key ssm_negatives)
        angle_based=True,
        indexed_negatives=True,
        defaults={"temperature": 0.2},
        color="#56b4e9",
    )
)
register_loss(
    LossEntry(
        "directau",
        "DirectAU",
        "prism_repro.losses:directau_loss",
        batch_size=4096,
        angle_based=True,
        needs_uniformity_rows=True,
        params=(Param("gamma", "g", 1.0, "weight of the uniformity term"),),
        defaults={"gamma": 1.0},
        color="#009e73",
    )
)
register_loss(
    LossEntry(
        "mawu",
        "MAWU",
        "prism_repro.losses:mawu_loss",
        batch_size=4096,
        angle_based=True,
        needs_margins=True,
        needs_uniformity_rows=True,
        params=(
            Param("gamma_user", "gu", None, "weight of the user uniformity (MAWU's gamma1)"),
            Param("gamma_item", "gi", None, "weight of the item uniformity (MAWU's gamma2)"),
        ),
        # margin_broadcast: the released code's (B, B) margin broadcasting (variant mawu_margin)
        defaults={"gamma_user": 0.5, "gamma_item": 0.5, "margin_broadcast": False},
        defaults_for="prism_repro.losses:mawu_gammas",
        color="#cc79a7",
    )
)

# The popularity-debiasing baselines of Figure 9 (prism_repro.debias). ReSN and IPL add their
# regulariser to BPR (ReSN also to DirectAU: ``auresn``); the forms of the released PRISM code
# and of the official code are variant keys (resn_form, ipl_form, macr_c).
register_loss(
    LossEntry(
        "resn",
        "ReSN",
        "prism_repro.debias:bpr_resn_loss",
        batch_size=16384,  # BPR's
        negatives=1,
        params=(Param("resn_weight", "w", 1e-4, "weight of ReSN's spectral penalty"),),
        defaults={"resn_weight": 1e-4, "form": "released"},
        inputs_for="prism_repro.debias:resn_inputs",
        engine_params={"form": "resn_form"},
        color="#0072b2",
    )
)
register_loss(
    LossEntry(
        "auresn",
        "DirectAU + ReSN",
        "prism_repro.debias:directau_resn_loss",
        batch_size=4096,  # DirectAU's
        needs_uniformity_rows=True,
        params=(
            Param("gamma", "g", 1.0, "weight of the uniformity term"),
            Param("resn_weight", "w", 1e-4, "weight of ReSN's spectral penalty"),
        ),
        defaults={"gamma": 1.0, "resn_weight": 1e-4, "form": "released"},
        inputs_for="prism_repro.debias:resn_inputs",
        engine_params={"form": "resn_form"},
        color="0.5",
    )
)
register_loss(
    LossEntry(
        "ipl",
        "IPL",
        "prism_repro.debias:bpr_ipl_loss",
        batch_size=16384,  # BPR's
        negatives=1,
        params=(Param("ipl_weight", "w", 0.1, "weight of IPL's regulariser (its lambda_f)"),),
        defaults={"ipl_weight": 0.1, "ipl_gamma": 1.5, "form": "batch"},
        defaults_for="prism_repro.debias:ipl_defaults",
        inputs_for="prism_repro.debias:ipl_inputs",
        engine_params={"form": "ipl_form"},
        color="#000000",
    )
)
register_loss(
    LossEntry(
        "macr",
        "MACR",
        "prism_repro.debias:macr_loss",
        batch_size=4096,  # weitianxin/MACR's Gowalla command
        negatives=1,  # pointwise BCE: each positive against one sampled negative
        defaults={"alpha": 1e-3, "beta": 1e-3},
        inputs=("branch_logits",),
        model="prism_repro.debias:MACR",
        model_options={"c_choice": "macr_c"},
        color="#d55e00",
    )
)

register_backbone(
    BackboneEntry("mf", "MF", "prism_repro.models:MatrixFactorization", color="#0072b2")
)
register_backbone(
    BackboneEntry("nlmf", "non-linear MF", "prism_repro.models:NonLinearMF", color="#d55e00")
)
register_backbone(
    BackboneEntry("lightgcn", "LightGCN", "prism_repro.models:LightGCN", color="#009e73")
)

DECAY_MODES: dict[str, AxisEntry] = {
    "none": AxisEntry("none", "no weight decay", "0.5"),
    "full": AxisEntry("full", "full-table weight decay", "#0072b2", param="weight_decay"),
    "batched": AxisEntry("batched", "batch-row weight decay", "#d55e00", param="weight_decay"),
}
INITS: dict[str, AxisEntry] = {
    "xavier": AxisEntry("xavier", "Xavier", "0.5"),
    "prism": AxisEntry("prism", "PRISM", "#cc79a7", param="alpha"),
}
# Items by train degree: top 5 %, next 15 %, bottom 80 % (stratum ids 0, 1, 2 in the data).
POPULARITY_GROUPS: dict[str, AxisEntry] = {
    "popular": AxisEntry("popular", "popular (top 5 %)", "#d55e00"),
    "neutral": AxisEntry("neutral", "neutral (next 15 %)", "#009e73"),
    "unpopular": AxisEntry("unpopular", "unpopular (bottom 80 %)", "#0072b2"),
}


def loss_params() -> dict[str, Param]:
    """Every loss hyper-parameter that is a grid axis, by name (shared names share a column)."""
    out: dict[str, Param] = {}
    for entry in LOSSES.values():
        for p in entry.params:
            out.setdefault(p.name, p)
    return out


def resolve(path: str):
    """The object named by ``"module:attribute"``."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
