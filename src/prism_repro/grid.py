"""The run grid of each experiment, from the resolved config (used by the rules and selection).

An experiment (``experiments.<name>`` in config.yaml) is the product of its lists: datasets x
backbones x losses x decay x weight_decay x init x lr x seeds x variants, with PRISM's alpha for
inits that take it and each loss's own grid parameters (registry ``Param``: DirectAU's ``gamma``,
MAWU's ``gamma_user`` / ``gamma_item``) for the losses that have them. Axes under ``tune`` are
chosen on validation with the first seed (``candidate_runs``); the selected settings are then
trained with every seed (``selection.final_runs``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from prism_repro import registry
from prism_repro.runspec import DEFAULT_VARIANT, RunSpec

__all__ = [
    "experiment_runs",
    "candidate_runs",
    "all_candidate_runs",
    "cosine_validation_runs",
    "spec_from_settings",
    "tunable_axes",
]


def tunable_axes() -> tuple[str, ...]:
    """Axes selection may tune: the numeric settings and every loss grid parameter."""
    return ("lr", "weight_decay", "alpha", *registry.loss_params())


def _loss_param_grid(exp: Mapping, loss: str) -> list[dict]:
    params = registry.LOSSES[loss].params
    lists = [exp.get(p.name) or [p.default] for p in params]
    return [dict(zip([p.name for p in params], values)) for values in itertools.product(*lists)]


def experiment_runs(config: Mapping, name: str, seeds=None) -> list[tuple[str, RunSpec]]:
    """(dataset, RunSpec) for every grid point of an experiment, for ``seeds`` (default: all)."""
    runs = []
    for dataset in config["experiments"][name]["datasets"]:
        runs += _dataset_runs(config, name, dataset, seeds)
    return list(dict.fromkeys(runs))


def dataset_experiment(config: Mapping, name: str, dataset: str) -> dict:
    """An experiment's settings for one dataset: its ``by_dataset`` overrides applied."""
    exp = dict(config["experiments"][name])
    overrides = (exp.pop("by_dataset", None) or {}).get(dataset) or {}
    return {**exp, **overrides}


def _dataset_runs(config: Mapping, name: str, dataset: str, seeds) -> list:
    exp = dataset_experiment(config, name, dataset)
    runs = []
    for variant, backbone, loss, decay, wd, init, lr, seed in itertools.product(
        exp.get("variants") or [DEFAULT_VARIANT],
        exp["backbones"],
        exp["losses"],
        exp["decay"],
        exp["weight_decay"],
        exp["init"],
        exp["lr"],
        exp["seeds"] if seeds is None else seeds,
    ):
        alphas = (exp.get("alpha") or [1.0]) if registry.INITS[init].param else [0.0]
        for alpha in alphas:
            for params in _loss_param_grid(exp, loss):
                spec = RunSpec.make(
                    backbone, loss, decay, wd, init, alpha, lr, seed, variant, **params
                )
                runs.append((dataset, spec))
    return runs


def candidate_runs(config: Mapping, name: str) -> list[tuple[str, RunSpec]]:
    """The runs an experiment trains before selection: the first seed only when it tunes."""
    exp = config["experiments"][name]
    return experiment_runs(config, name, exp["seeds"][:1] if exp.get("tune") else None)


def all_candidate_runs(config: Mapping) -> list[tuple[str, RunSpec]]:
    """Every run known before selection, over all experiments, each once, sorted by path."""
    runs = {r for name in config["experiments"] for r in candidate_runs(config, name)}
    return sorted(runs, key=lambda r: (r[0], r[1].run_id))


def cosine_validation_runs(config: Mapping) -> set[tuple[str, str]]:
    """(dataset, run id) of every run whose validation is also scored by cosine (Figure 6)."""
    return {
        (dataset, spec.run_id)
        for name, exp in config["experiments"].items()
        if exp.get("cosine_validation")
        for dataset, spec in experiment_runs(config, name)
    }


def spec_from_settings(row: Mapping, seed: int) -> RunSpec:
    """The spec of a settings row (selection's output) with another seed."""
    params = {
        name: row[name]
        for name in registry.loss_params()
        if name in row and row[name] is not None and row[name] == row[name]
    }
    return RunSpec.make(
        row["backbone"],
        row["loss"],
        row["decay"],
        row["weight_decay"],
        row["init"],
        row["alpha"],
        row["lr"],
        seed,
        row.get("variant") if isinstance(row.get("variant"), str) else DEFAULT_VARIANT,
        **params,
    )
