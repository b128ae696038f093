"""Run identity: one training run's settings <-> a readable, parseable run id.

A run id names everything that varies across the paper's grid, so a run can be rebuilt from its
path alone (``results/<preset>/runs/<dataset>/<run id>/metrics.parquet``):

    mf_bpr_full1e-06_xavier_lr0.001_s123
    nlmf_directau-g2_batched1e-06_prism0.5_lr0.01_s246
    lightgcn_mawu_none_prism1_lr0.01_s492
    mf_mawu-gu2-gi0.5_full1e-06_xavier_lr0.01_s123_vreleased

fields: backbone, loss (with the loss's grid hyper-parameters: DirectAU's gamma ``-g``, MAWU's
gammas ``-gu``/``-gi`` when set), weight-decay mode and strength, init (PRISM's alpha), learning
rate, seed, and the variant when it is not the default ``paper`` (``_v<name>``). Settings shared
by every run (dim, epochs, batch sizes, ...) come from the config, not the id.

One grammar, built from the registries (``prism_repro.registry``): :func:`run_id_pattern` is the
Snakemake wildcard constraint and :meth:`RunSpec.parse` the strict parser
(``RunSpec.parse(id).run_id == id`` or it raises).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from prism_repro import registry

DEFAULT_VARIANT = "paper"
VARIANT_NAME = r"[a-z][a-z0-9-]*"
NUM = r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:e[-+][0-9]+)?"


def fmt_num(x: float) -> str:
    """Canonical, exact text of a number: 1e-06, 0.001, 1, 0.5, 123456789 (repr round-trips,
    so two values never share an id; integers drop the trailing .0)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x}")
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


def _loss_alternative(entry: registry.LossEntry) -> str:
    parts = [re.escape(entry.name)]
    for p in entry.params:
        token = f"-{re.escape(p.token)}{NUM}"
        parts.append(token if p.default is not None else f"(?:{token})?")
    return "".join(parts)


def run_id_pattern(variants: list[str] | None = None) -> str:
    """Regular expression of every run id (the Snakemake wildcard constraint), from the
    registries; ``variants``: the variant names allowed (default: any well-formed name)."""
    backbones = "|".join(map(re.escape, registry.BACKBONES))
    losses = "|".join(_loss_alternative(e) for e in registry.LOSSES.values())
    decays = "|".join(
        re.escape(d.name) + (NUM if d.param else "") for d in registry.DECAY_MODES.values()
    )
    inits = "|".join(re.escape(i.name) + (NUM if i.param else "") for i in registry.INITS.values())
    names = VARIANT_NAME if variants is None else "|".join(map(re.escape, variants))
    return (
        f"(?:{backbones})_(?:{losses})_(?:{decays})_(?:{inits})_lr{NUM}_s[0-9]+(?:_v(?:{names}))?"
    )


_FIELDS = re.compile(
    rf"(?P<backbone>[a-z0-9]+)_(?P<loss>[a-z0-9]+(?:-[a-z]+{NUM})*)_(?P<decay>[a-z]+)(?P<wd>{NUM})?"
    rf"_(?P<init>[a-z]+)(?P<alpha>{NUM})?_lr(?P<lr>{NUM})_s(?P<seed>[0-9]+)(?:_v(?P<variant>{VARIANT_NAME}))?"
)


@dataclass(frozen=True)
class RunSpec:
    backbone: str
    loss: str
    decay: str  # a registry.DECAY_MODES name
    weight_decay: float
    init: str  # a registry.INITS name
    alpha: float  # PRISM's alpha; 0 for xavier
    lr: float
    seed: int
    params: tuple = ()  # the loss's grid hyper-parameters: ((name, value), ...) in registry order
    variant: str = DEFAULT_VARIANT

    def __post_init__(self):
        if self.backbone not in registry.BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} not in {tuple(registry.BACKBONES)}")
        if self.loss not in registry.LOSSES:
            raise ValueError(f"loss {self.loss!r} not in {tuple(registry.LOSSES)}")
        if self.decay not in registry.DECAY_MODES:
            raise ValueError(f"decay {self.decay!r} not in {tuple(registry.DECAY_MODES)}")
        if self.init not in registry.INITS:
            raise ValueError(f"init {self.init!r} not in {tuple(registry.INITS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"PRISM alpha must lie in [0, 1], got {self.alpha}")
        if not (self.weight_decay >= 0 and self.lr > 0):
            raise ValueError("weight_decay must be >= 0 and lr > 0")
        if not re.fullmatch(VARIANT_NAME, self.variant):
            raise ValueError(f"variant name {self.variant!r} must match {VARIANT_NAME}")
        # one canonical spelling per setting: zero strength is no decay; xavier has no alpha
        set_ = object.__setattr__
        if self.decay != "none" and self.weight_decay == 0:
            set_(self, "decay", "none")
        if not registry.DECAY_MODES[self.decay].param:
            set_(self, "weight_decay", 0.0)
        if not registry.INITS[self.init].param:
            set_(self, "alpha", 0.0)
        set_(self, "weight_decay", float(self.weight_decay))
        set_(self, "alpha", float(self.alpha))
        set_(self, "lr", float(self.lr))
        set_(self, "seed", int(self.seed))
        given = dict(self.params)
        entry = registry.LOSSES[self.loss]
        unknown = set(given) - {p.name for p in entry.params}
        known = set(registry.loss_params())
        if unknown - known:
            raise ValueError(f"loss {self.loss!r} has no grid parameter {sorted(unknown - known)}")
        params = []
        for p in entry.params:  # others' params (e.g. gamma for BPR) are dropped: not this loss's
            value = given.get(p.name, p.default)
            if value is not None and (value != value):  # NaN from a table: unset
                value = p.default
            if value is not None:
                if float(value) < 0:
                    raise ValueError(f"{self.loss} parameter {p.name} must be >= 0, got {value}")
                params.append((p.name, float(value)))
        set_(self, "params", tuple(params))

    @classmethod
    def make(cls, backbone, loss, decay, weight_decay, init, alpha, lr, seed, variant=None, **kw):
        """A spec from plain settings; loss grid parameters as keywords (``gamma=2``)."""
        return cls(
            backbone,
            loss,
            decay,
            weight_decay,
            init,
            alpha,
            lr,
            seed,
            tuple(kw.items()),
            variant or DEFAULT_VARIANT,
        )

    def __getattr__(self, name):  # loss parameters read as attributes: spec.gamma
        if name in registry.loss_params():
            return dict(self.params).get(name)
        raise AttributeError(name)

    @property
    def run_id(self) -> str:
        entry = registry.LOSSES[self.loss]
        given = dict(self.params)
        loss = self.loss + "".join(
            f"-{p.token}{fmt_num(given[p.name])}" for p in entry.params if p.name in given
        )
        decay = self.decay + (fmt_num(self.weight_decay) if self.decay != "none" else "")
        init = self.init + (fmt_num(self.alpha) if registry.INITS[self.init].param else "")
        tail = "" if self.variant == DEFAULT_VARIANT else f"_v{self.variant}"
        return f"{self.backbone}_{loss}_{decay}_{init}_lr{fmt_num(self.lr)}_s{self.seed}{tail}"

    def as_dict(self) -> dict:
        """Flat settings: one column per field and per loss grid parameter (None where unset)."""
        out = {
            "backbone": self.backbone,
            "loss": self.loss,
            "decay": self.decay,
            "weight_decay": self.weight_decay,
            "init": self.init,
            "alpha": self.alpha,
            "lr": self.lr,
            "seed": self.seed,
            "variant": self.variant,
        }
        given = dict(self.params)
        out.update({name: given.get(name) for name in registry.loss_params()})
        return out

    @classmethod
    def parse(cls, run_id: str) -> RunSpec:
        """The spec of a canonical run id; anything else raises ValueError naming the problem."""
        example = "e.g. mf_bpr_full1e-06_xavier_lr0.001_s123"
        m = _FIELDS.fullmatch(run_id)
        if not m or not re.fullmatch(run_id_pattern(), run_id):
            raise ValueError(f"not a run id: {run_id!r} ({example})")
        g = m.groupdict()
        loss_name, _, rest = g["loss"].partition("-")
        entry = registry.LOSSES.get(loss_name)
        if entry is None:
            raise ValueError(f"not a run id: {run_id!r}: unknown loss {loss_name!r}")
        by_token = {p.token: p.name for p in entry.params}
        params = []
        # -<token><number> pairs; a number may hold a '-' itself (1e-06), so no split on '-'
        for tok, value in re.findall(rf"([a-z]+)({NUM})", rest):
            if tok not in by_token:
                raise ValueError(f"not a run id: {run_id!r}: loss {loss_name} has no -{tok}")
            params.append((by_token[tok], float(value)))
        try:
            spec = cls(
                backbone=g["backbone"],
                loss=loss_name,
                decay=g["decay"],
                weight_decay=float(g["wd"]) if g["wd"] else 0.0,
                init=g["init"],
                alpha=float(g["alpha"]) if g["alpha"] else 0.0,
                lr=float(g["lr"]),
                seed=int(g["seed"]),
                params=tuple(params),
                variant=g["variant"] or DEFAULT_VARIANT,
            )
        except ValueError as err:
            raise ValueError(f"not a run id: {run_id!r}: {err}") from None
        if spec.run_id != run_id:
            raise ValueError(
                f"not a canonical run id: {run_id!r}; the canonical form is {spec.run_id!r}"
            )
        return spec
