"""Run identity: one training run's settings <-> a readable, parseable run id.

A run id names everything that varies across the paper's grid, so a run can be rebuilt from its
path alone (``results/<preset>/runs/<dataset>/<run id>/metrics.parquet``):

    mf_bpr_full1e-06_xavier_lr0.001_s123
    nlmf_directau-g2_batched1e-06_prism0.5_lr0.01_s246
    lightgcn_mawu_none_prism1_lr0.01_s492

fields: backbone, loss (with DirectAU's gamma), weight-decay mode and strength, init (PRISM's
alpha), learning rate, seed. Settings shared by every run (dim, epochs, batch sizes, ...) come from
the config, not the id.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

BACKBONES = ("mf", "nlmf", "lightgcn")
LOSSES = ("bpr", "ssm", "directau", "mawu")
DECAY_MODES = ("none", "full", "batched")

_NUM = r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?"
RUN_ID_PATTERN = (
    rf"(?:{'|'.join(BACKBONES)})"
    rf"_(?:bpr|ssm|mawu|directau-g{_NUM})"
    rf"_(?:none|full{_NUM}|batched{_NUM})"
    rf"_(?:xavier|prism{_NUM})"
    rf"_lr{_NUM}"
    rf"_s[0-9]+"
)
_RUN_ID_RE = re.compile(
    rf"(?P<backbone>{'|'.join(BACKBONES)})"
    rf"_(?P<loss>bpr|ssm|mawu|directau)(?:-g(?P<gamma>{_NUM}))?"
    rf"_(?P<decay>none|full|batched)(?P<wd>{_NUM})?"
    rf"_(?P<init>xavier|prism)(?P<alpha>{_NUM})?"
    rf"_lr(?P<lr>{_NUM})"
    rf"_s(?P<seed>[0-9]+)"
)


def fmt_num(x: float) -> str:
    """Canonical short text of a number: 1e-06, 0.001, 1, 0.5 (so ids are unique per value)."""
    return format(float(x), "g")


@dataclass(frozen=True)
class RunSpec:
    backbone: str
    loss: str
    decay: str  # none | full | batched
    weight_decay: float
    init: str  # xavier | prism
    alpha: float  # PRISM's alpha; 0 for xavier
    lr: float
    seed: int
    gamma: float = 1.0  # DirectAU's uniformity weight (other losses ignore it)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} not in {BACKBONES}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} not in {LOSSES}")
        if self.decay not in DECAY_MODES:
            raise ValueError(f"decay {self.decay!r} not in {DECAY_MODES}")
        if self.init not in ("xavier", "prism"):
            raise ValueError(f"init {self.init!r} not in ('xavier', 'prism')")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"PRISM alpha must lie in [0, 1], got {self.alpha}")
        if self.weight_decay < 0 or self.lr <= 0:
            raise ValueError("weight_decay must be >= 0 and lr > 0")
        # one canonical spelling per setting: zero strength is no decay; xavier has no alpha
        if self.decay != "none" and self.weight_decay == 0:
            object.__setattr__(self, "decay", "none")
        if self.decay == "none":
            object.__setattr__(self, "weight_decay", 0.0)
        if self.init == "xavier":
            object.__setattr__(self, "alpha", 0.0)
        if self.loss != "directau":
            object.__setattr__(self, "gamma", 1.0)

    @property
    def run_id(self) -> str:
        loss = f"directau-g{fmt_num(self.gamma)}" if self.loss == "directau" else self.loss
        decay = "none" if self.decay == "none" else f"{self.decay}{fmt_num(self.weight_decay)}"
        init = "xavier" if self.init == "xavier" else f"prism{fmt_num(self.alpha)}"
        return f"{self.backbone}_{loss}_{decay}_{init}_lr{fmt_num(self.lr)}_s{self.seed}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, run_id: str) -> RunSpec:
        m = _RUN_ID_RE.fullmatch(run_id)
        if not m:
            raise ValueError(
                f"not a run id: {run_id!r} (expected e.g. mf_bpr_full1e-06_xavier_lr0.001_s123)"
            )
        g = m.groupdict()
        return cls(
            backbone=g["backbone"],
            loss=g["loss"],
            gamma=float(g["gamma"]) if g["gamma"] else 1.0,
            decay=g["decay"],
            weight_decay=float(g["wd"]) if g["wd"] else 0.0,
            init=g["init"],
            alpha=float(g["alpha"]) if g["alpha"] else (0.0 if g["init"] == "xavier" else 1.0),
            lr=float(g["lr"]),
            seed=int(g["seed"]),
        )
