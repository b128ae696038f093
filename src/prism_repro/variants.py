"""Paper text or released code: every known difference as a key of a named variant.

A variant is a bundle of behaviours defined once in the config (``variants:`` in config.yaml):
``paper`` (the paper's text, and the released code's behaviour where the text is silent) is the
default; ``released`` reproduces the released code (snap-research/PRISM, HEAD ab2777d). A
variant may set only some keys: the others are the default variant's. An experiment lists the
variants it runs (``variants: [paper, released]``); a non-default variant appears in the run id
(``..._s123_vreleased``), so two variants never share a run folder. Data-level keys reach the
data rules: a variant whose data-level keys differ from the default's gets its own data folder.

:data:`VARIANT_KEYS` is the one place each difference is described; ``docs/paper-vs-code.md`` is
generated from it and the config's variants (``python -m prism_repro paper-vs-code``), and a
test fails when they disagree.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prism_repro.io import atomic_path
from prism_repro.runspec import DEFAULT_VARIANT

__all__ = [
    "VariantKey",
    "VARIANT_KEYS",
    "variant_settings",
    "data_variant",
    "variant_difference",
    "render_paper_vs_code",
]


@dataclass(frozen=True)
class VariantKey:
    name: str
    level: str  # "engine" (the training run) or "data" (preprocessing, strata)
    choices: tuple  # allowed values (booleans and integers included)
    topic: str
    paper: str  # what the paper's text says (with its section), or "silent"
    released: str  # what the released code does (with its file)
    meaning: dict  # value -> what this project does with it


VARIANT_KEYS: dict[str, VariantKey] = {
    k.name: k
    for k in [
        VariantKey(
            "negative_pool",
            "engine",
            ("all", "batch"),
            "Negative pool of BPR and SSM",
            "uniform over the whole item set, false negatives allowed: Appendix B.3 (PyG's "
            "approximate negative sampling) and C.4 (negatives independent of popularity)",
            "uniform over the items of the mini-batch subgraph (`train.py` `train_model`): for "
            "MF / NL-MF the batch's distinct positive items, for LightGCN its 3-hop subgraph",
            {
                "all": "uniform over all items",
                "batch": "uniform over the batch's distinct positive items",
            },
        ),
        VariantKey(
            "ssm_negatives",
            "engine",
            (10, 20),
            "SSM negatives per positive",
            "10 (experimental setup)",
            "20 (`run_train_prism.sh` `NEG_RATIOS=(20)`)",
            {10: "10 negatives", 20: "20 negatives"},
        ),
        VariantKey(
            "nlmf_relu",
            "engine",
            (True, False),
            "Non-linear MF activation",
            "two MLP layers with ReLU (experimental setup)",
            "`MLPEncoder.forward` calls `self.act(x)` and drops the result: no activation, "
            "each tower is affine (`models.py`)",
            {True: "ReLU between the two layers", False: "no activation (affine towers)"},
        ),
        VariantKey(
            "uniformity_rows",
            "engine",
            ("unique", "interactions"),
            "Rows of the DirectAU / MAWU uniformity terms",
            "silent",
            "the unique users / items of the batch's edge set (`train.py` "
            "`forward_and_get_loss`); official DirectAU and MAWU use the per-interaction rows",
            {
                "unique": "the batch's distinct users / items",
                "interactions": "one row per interaction, duplicates kept (official DirectAU, MAWU)",
            },
        ),
        VariantKey(
            "mawu_clamp",
            "engine",
            ("before_backward", "after_step"),
            "When MAWU's margins are clamped to [0, 1]",
            "silent",
            "`clip_margins()` right after the loss is computed, before `backward` and the "
            "optimizer step (`train.py`), so a batch may read margins outside [0, 1]",
            {
                "before_backward": "clamp after the forward, before backward (as released)",
                "after_step": "clamp after the optimizer step: every forward reads [0, 1]",
            },
        ),
        VariantKey(
            "mawu_margin",
            "engine",
            ("pair", "broadcast"),
            "MAWU margin in the alignment term",
            "one margin per (user, item) pair: MAWU's formula as the paper cites it",
            "a (B, 1) margin tensor added to a (B,) angle broadcasts to (B, B) before the mean "
            "(`losses.py` `MAWULoss`; same in official `psm1206/MAWU`)",
            {
                "pair": "one margin per pair",
                "broadcast": "the (B, B) broadcast of the released code",
            },
        ),
        VariantKey(
            "decay_params",
            "engine",
            ("embeddings", "all"),
            "What full-table weight decay covers",
            'the embedding tables: (lambda/2)(sum ‖u‖² + sum ‖i‖²) (Theorem 3.1) and "applied by the optimizer to the whole tables" (experimental setup)',
            "`Adam(model.parameters(), weight_decay=wd)`: tower weights and biases and MAWU's "
            "margins decay too (`train.py` `Trainer.__init__`)",
            {"embeddings": "the user and item tables only", "all": "every trained parameter"},
        ),
        VariantKey(
            "lightgcn_test_graph",
            "engine",
            ("train_val", "train"),
            "LightGCN's graph when scoring the test split",
            "silent",
            "train + validation edges (`RandomLinkSplit`: the test split's message edges)",
            {"train_val": "train + validation edges", "train": "train edges only"},
        ),
        VariantKey(
            "batch_order",
            "engine",
            ("shuffled", "fixed"),
            "Order of training batches",
            "uniformly random batches: Observation 1 and Theorem 3.1 take an item's batch "
            "inclusion as random",
            "`LinkNeighborLoader(shuffle=False)`: the same batches in the same order every epoch",
            {
                "shuffled": "a new seeded permutation every epoch",
                "fixed": "one seeded permutation, reused every epoch",
            },
        ),
        VariantKey(
            "resn_form",
            "engine",
            ("released", "official"),
            "ReSN's spectral penalty (Figure 9 baseline)",
            "silent (Appendix D.2 names ReSN, no settings)",
            "`losses.py` `ReSN`: ‖U Vᵀ V Uᵀ 1‖² / ‖V Uᵀ 1‖² over the batch's distinct user and "
            "item outputs, no sigmoid, gradient through the power-iteration vector; official "
            "LIN452/ReSN: ‖σ(U Vᵀ) v‖² over all items, v = stop_grad(normalize(σ(U Vᵀ)ᵀ 1))",
            {
                "released": "the released Rayleigh-quotient form",
                "official": "sigmoid, one power-iteration step, stop-gradient, all items",
            },
        ),
        VariantKey(
            "ipl_form",
            "engine",
            ("batch", "epoch"),
            "Pairs IPL's regulariser counts (Figure 9 baseline)",
            "silent (Appendix D.2 names IPL, no settings)",
            "`losses.py` `IPL`: the mini-batch's positive pairs; official UnitDan/IPL: every "
            "training pair, once per epoch (with one optimizer step per epoch)",
            {
                "batch": "the batch's positives (released)",
                "epoch": "every training pair at every step (the official term)",
            },
        ),
        VariantKey(
            "macr_c",
            "engine",
            ("sweep", "fixed"),
            "MACR's counterfactual reference c (Figure 9 baseline)",
            "silent (Appendix D.2 names MACR, no settings); MACR's own procedure picks c on "
            "validation",
            "`losses.py` `MACRLoss`: c = 1 fixed; official weitianxin/MACR sweeps c after "
            "training (`macr_mf/command`: 0 to 60) and keeps the best on validation",
            {
                "sweep": "c chosen on validation from 0, 5, ..., 60 (saved with the model)",
                "fixed": "c = 1",
            },
        ),
        VariantKey(
            "strata_degrees",
            "data",
            ("train", "all"),
            "Degrees that define the popularity strata",
            "train popularity (experimental setup)",
            "`test.py` counts train + validation + test interactions",
            {"train": "train-split degrees", "all": "degrees over all splits"},
        ),
        VariantKey(
            "movielens_min_rating",
            "data",
            (3, 1),
            "MovieLens1M interactions",
            "ratings >= 3: 836,478 interactions (Table 2)",
            "all 1,000,209 ratings (PyG `MovieLens1M`)",
            {3: "ratings >= 3", 1: "all ratings"},
        ),
    ]
}


def variant_settings(config: Mapping, name: str) -> dict:
    """Every key of variant ``name``: its own values over the default variant's."""
    variants = config.get("variants") or {}
    if name not in variants:
        raise KeyError(f"unknown variant {name!r}; defined: {', '.join(variants)}")
    base = dict(variants.get(DEFAULT_VARIANT) or {})
    return {**base, **(variants[name] or {})}


def variant_difference(config: Mapping, name: str) -> str:
    """What variant ``name`` changes against the default, in words: "key: meaning; ..." over the
    keys whose value differs ("the default" when none does)."""
    base, mine = variant_settings(config, DEFAULT_VARIANT), variant_settings(config, name)
    parts = []
    for key, value in mine.items():
        if base.get(key) == value:
            continue
        spec = VARIANT_KEYS.get(key)
        meaning = spec.meaning.get(value, _fmt(value)) if spec else _fmt(value)
        parts.append(f"`{key}`: {meaning}")
    return "; ".join(parts) or "the default"


def data_variant(config: Mapping, name: str) -> str:
    """The variant whose data folder ``name`` uses: the first (default first) with the same
    data-level settings, so variants that differ only in training share their data."""
    data_keys = [k for k, v in VARIANT_KEYS.items() if v.level == "data"]
    mine = {k: variant_settings(config, name).get(k) for k in data_keys}
    names = [DEFAULT_VARIANT] + [v for v in config.get("variants", {}) if v != DEFAULT_VARIANT]
    for other in names:
        if {k: variant_settings(config, other).get(k) for k in data_keys} == mine:
            return other
    return name


def _fmt(value) -> str:
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def render_paper_vs_code(config: Mapping) -> str:
    """docs/paper-vs-code.md from :data:`VARIANT_KEYS` and the config's variants."""
    variants = config.get("variants") or {}
    names = list(variants)
    lines = [
        "# Paper vs. released code",
        "",
        "<!-- generated by `python -m prism_repro paper-vs-code` from src/prism_repro/variants.py",
        "     and config.yaml's `variants:`; tests/test_variants.py fails when they disagree -->",
        "",
        'The paper ("On the Role of Weight Decay in Collaborative Filtering: A Popularity',
        "Perspective\", Loveland et al., KDD'25, arXiv 2505.11318) and its released code",
        "(`snap-research/PRISM`, HEAD ab2777d; files named as in that repository) disagree in places.",
        "Each difference is a key of a *variant*, a named bundle of behaviours in `config.yaml`",
        "(`variants:`). `paper` is the default: the paper's text, and the released code's behaviour",
        "where the text is silent. `released` reproduces the released code. An experiment selects",
        "variants with `variants: [paper, released]`; a non-default variant's runs carry",
        "`_v<name>` in their run id. A variant sets only the keys it changes; the rest are `paper`'s.",
        "",
        "| key | topic | paper's text | released code | "
        + " | ".join(f"`{n}`" for n in names)
        + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for key in VARIANT_KEYS.values():
        cells = []
        for n in names:
            value = variant_settings(config, n).get(key.name)
            cells.append(f"{_fmt(value)}: {key.meaning.get(value, '?')}")
        lines.append(
            f"| `{key.name}` ({key.level}) | {key.topic} | {key.paper} | {key.released} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "## Differences that are not switches",
        "",
        "| topic | paper | released code | here |",
        "|---|---|---|---|",
        "| SSM temperature | silent | `tau = 0.2` hard-coded (`losses.py` `SSMLoss`) | 0.2 |",
        "| SSM numerics | - | `-log(exp(pos/tau) / sum exp)`, overflows for small tau | "
        "logsumexp form, same value |",
        "| MAWU weighted uniformity | MAWU's | `tril(C, -1)` adds exp(-2t) per zeroed entry "
        "(same in official MAWU) | kept exactly (`losses.uniformity_dot`) |",
        "| MAWU gammas | MAWU's recommended settings; loss-specific ones tuned on MovieLens "
        "(Appendix B.1) | `--gamma_vals` required | MAWU README values for Gowalla and "
        "Yelp2018 (NL-MF takes MF's); the paper preset tunes `gamma_user` x `gamma_item` for "
        "MovieLens1M; AmazonBook takes MAWU's defaults 0.5 / 0.5 (nothing published) |",
        "| MAWU margin init | - | `xavier_uniform_` (official MAWU: Xavier-normal) | "
        "Xavier-uniform |",
        "| Weight decay | applied by the optimizer | Adam's coupled L2, not AdamW | coupled L2 |",
        "| Batched weight decay (Figure 3) | decay the batch's rows | (wd/2)(sum of squared "
        "encoder outputs of the unique users / items of the scored edge set, negatives "
        "included) | the same |",
        "| LightGCN propagation | 3 layers (PyG) | per batch on the `LinkNeighborLoader` 3-hop "
        "subgraph, degrees of that subgraph | exact full-graph LightGCN |",
        "| LightGCN validation graph | - | train edges | train edges |",
        "| PRISM scale | alpha log(d + 2) + (1 - alpha) | natural log, train-split degrees | "
        "the same; alpha outside [0, 1] is an error |",
        "| What PRISM rescales | user and item embeddings | the ID tables only | the ID tables |",
        "| NDCG users | users with held-out items | the evaluation loop skips its last user "
        "group (a bug) | every user with held-out items |",
        "| Model selection | validation NDCG@20, patience 10 | dot-product validation NDCG@20 | "
        "the same |",
        "| Debiasing baselines (Figure 9) | ReSN, IPL, MACR named, no settings (Appendix D.2) | "
        "`--reg_types ReSN\\|IPL` added to BPR or the alignment loss, `--loss MACR` | registry "
        "losses `resn` (BPR + ReSN), `auresn` (DirectAU + ReSN), `ipl` (BPR + IPL), `macr`; "
        "weights tuned on validation (`resn_weight`, `ipl_weight`; `prism_repro.debias`) |",
        "| ReSN weight scale | - | added to BPR's mean | the same; official ReSN adds 0.01 "
        "(its README) to a loss *summed* over the batch, so our grid is smaller |",
        "| IPL gamma | - | ML-1M 1.826, Gowalla 1.285, Yelp2018 1.552, AmazonBook 1.446 "
        "(same as UnitDan/IPL `configs/dataset_config.py`) | the same; other datasets 1.5 |",
        "| IPL items of train degree 0 | - | 0 / 0 = NaN | r = 0 |",
        "| IPL spread | - | `torch.std` (n - 1) over all items, items outside the batch at 0 | "
        "the same |",
        "| MACR model | - | MF + user / item branches `Embedding(64, 1)`, Xavier-normal; fused "
        "y_k σ(y_i) σ(y_u) | `debias.MACR` around any encoder, bias-free `Linear(d, 1)` "
        "branches, Xavier-normal; ranks by (y_k - c) σ(y_i) σ(y_u) |",
        "| MACR loss | - | BCE on the fused score + 1e-3 BCE on each branch, one negative | "
        "the same (weitianxin/MACR `macr_mf/parse.py`: alpha = beta = 1e-3) |",
        "",
    ]
    return "\n".join(lines)


def _command(args: argparse.Namespace) -> None:
    import yaml

    from prism_repro.config import resolve_config

    raw = yaml.safe_load(Path(args.config).read_text())
    config = resolve_config(raw, args.schema)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(render_paper_vs_code(config))


def register(sub) -> None:
    p = sub.add_parser("paper-vs-code", help="write docs/paper-vs-code.md from the variants")
    p.add_argument("--config", type=Path, default=Path("config.yaml"))
    p.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))
    p.add_argument("--out", type=Path, default=Path("docs/paper-vs-code.md"))
    p.set_defaults(func=_command)
