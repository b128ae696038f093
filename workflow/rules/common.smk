# Config resolution (preset + schema), run grids, and the path helpers rules share.
import functools
import itertools
import re
import sys

import pandas as pd

from prism_repro.config import ConfigError, resolve_config
from prism_repro.runspec import RUN_ID_PATTERN, RunSpec

try:
    _resolved = resolve_config(
        config,
        f"{workflow.basedir}/workflow/schemas/config.schema.yaml",
        dict(workflow.config_settings.config),
    )
except ConfigError as err:
    sys.exit(f"config error: {err}")
config.clear()
config.update(_resolved)
PRESET = config["preset"]

# Which experiments (config `experiments:`) feed each artifact; an artifact is built when its
# preset defines all of them.
FIGURE_EXPERIMENTS = {
    "fig1": ["fig1"],
    "fig2": ["fig1"],
    "fig3": ["fig3"],
    "fig4": ["fig4", "table1_wd"],
    "fig5": ["fig4"],
    "fig6": ["fig6"],
    "fig7": [],
    "fig8": ["fig8"],
    "fig10": ["fig10"],
    "fig11": ["fig11"],
}
CLAIM_EXPERIMENTS = ["table1_wd", "table1_prism", "fig1", "fig3", "fig4", "fig8"]
TABLE_EXPERIMENTS = {
    "table1": ["table1_wd", "table1_prism"],
    "table2": [],
    "runs": list(config["experiments"]),
    # the claims whose experiments the preset runs are checked; the others are marked "not run"
    "claims": [e for e in CLAIM_EXPERIMENTS if e in config["experiments"]],
}


wildcard_constraints:
    preset=re.escape(PRESET),
    dataset="|".join(re.escape(d) for d in config["datasets"]),
    run=RUN_ID_PATTERN,
    seed="[0-9]+",
    experiment="|".join(re.escape(e) for e in config["experiments"]),
    figure="|".join(FIGURE_EXPERIMENTS),
    table="|".join(t for t in TABLE_EXPERIMENTS if t != "table2"),


def experiment_runs(name, seeds=None):
    """(dataset, RunSpec) for every grid point of an experiment, for the given seeds (default: all)."""
    exp = config["experiments"][name]
    runs = []
    for dataset, backbone, loss, decay, wd, init, lr, seed in itertools.product(
        exp["datasets"],
        exp["backbones"],
        exp["losses"],
        exp["decay"],
        exp["weight_decay"],
        exp["init"],
        exp["lr"],
        exp["seeds"] if seeds is None else seeds,
    ):
        for alpha in exp["alpha"] if init == "prism" else [0.0]:
            for gamma in exp["gamma"] if loss == "directau" else [1.0]:
                spec = RunSpec(backbone, loss, decay, wd, init, alpha, lr, seed, gamma)
                runs.append((dataset, spec))
    return list(dict.fromkeys(runs))


def candidate_runs(name):
    """The runs an experiment trains before selection: the first seed only when it tunes."""
    exp = config["experiments"][name]
    return experiment_runs(name, exp["seeds"][:1] if exp["tune"] else None)


def run_file(preset, dataset, run, name):
    return f"results/{preset}/runs/{dataset}/{run}/{name}"


def candidate_metrics(wildcards):
    return [
        run_file(wildcards.preset, dataset, spec.run_id, "metrics.parquet")
        for dataset, spec in candidate_runs(wildcards.experiment)
    ]


def final_runs(wildcards):
    """(dataset, run id) of the runs an experiment reports: the selected settings x all seeds."""
    if not config["experiments"][wildcards.experiment]["tune"]:
        return [(d, spec.run_id) for d, spec in experiment_runs(wildcards.experiment)]
    selection = checkpoints.select.get(
        preset=wildcards.preset, experiment=wildcards.experiment
    ).output[0]
    table = pd.read_parquet(selection, columns=["dataset", "run"])
    return list(zip(table["dataset"], table["run"]))


def final_run_files(name):
    """Input function: one file ``name`` per final run of the experiment wildcard."""

    def files(wildcards):
        return [run_file(wildcards.preset, d, run, name) for d, run in final_runs(wildcards)]

    return files


def run_metrics_targets():
    return sorted(
        {
            run_file(PRESET, dataset, spec.run_id, "metrics.parquet")
            for name in config["experiments"]
            for dataset, spec in candidate_runs(name)
        }
    )


@functools.cache
def cosine_validation_runs():
    """(dataset, run id) of every run whose validation is also scored by cosine (Figure 6)."""
    return {
        (dataset, spec.run_id)
        for name, exp in config["experiments"].items()
        if exp["cosine_validation"]
        for dataset, spec in experiment_runs(name)
    }


def available(needs):
    """Artifacts whose experiments the preset defines, in order."""
    return [name for name, exps in needs.items() if all(e in config["experiments"] for e in exps)]


def experiment_tables(suffix):
    """Input function: the aggregated ``<experiment><suffix>.parquet`` of each needed experiment."""

    def files(wildcards):
        if "figure" in wildcards.keys():
            needs = FIGURE_EXPERIMENTS[wildcards.figure]
        else:
            needs = TABLE_EXPERIMENTS[wildcards.table]
        return [f"results/{wildcards.preset}/metrics/{e}{suffix}.parquet" for e in needs]

    return files


def figure_targets():
    return expand(
        "results/{preset}/figures/{figure}.{ext}",
        preset=PRESET,
        figure=available(FIGURE_EXPERIMENTS),
        ext=["png", "pdf"],
    )


def table_targets():
    return expand(
        "results/{preset}/tables/{table}.{ext}",
        preset=PRESET,
        table=available(TABLE_EXPERIMENTS),
        ext=["csv", "md", "tex"],
    )


def dataset_source(name):
    return config["datasets"][name]["source"]


def raw_dataset_files(wildcards):
    """The raw files a dataset's preprocessing reads."""
    source = dataset_source(wildcards.dataset)
    if source == "synthetic":
        return expand(
            "results/{preset}/data/{dataset}/raw/{file}",
            preset=wildcards.preset,
            dataset=wildcards.dataset,
            file=["train.txt", "test.txt"],
        )
    return downloaded_files(wildcards.dataset)


def preprocess_source(wildcards):
    return dataset_source(wildcards.dataset)


def downloaded_files(dataset):
    """resources/raw/{dataset}/{file} for each file the dataset's config pins (rule download)."""
    from prism_repro.cli import UserError
    from prism_repro.data.download import dataset_files

    try:
        files = dataset_files(dataset, config["datasets"])
    except UserError as err:
        raise WorkflowError(str(err)) from None
    return [f"resources/raw/{dataset}/{name}" for name in files]


def download_url(wildcards):
    """Base URL of the dataset's files (config datasets.<dataset>.url)."""
    return config["datasets"][wildcards.dataset]["url"]


def download_checksum(wildcards):
    """Pinned checksum of one raw file (config datasets.<dataset>.files.<file>)."""
    files = config["datasets"][wildcards.dataset].get("files", {})
    if wildcards.file not in files:
        raise WorkflowError(f"dataset {wildcards.dataset!r} pins no file {wildcards.file!r}")
    return files[wildcards.file]


def preprocess_options(wildcards):
    """Source-specific preprocess flags: the MovieLens rating threshold (default in the package: 3)."""
    spec = config["datasets"][wildcards.dataset]
    return f"--min-rating {spec['min_rating']}" if "min_rating" in spec else ""


def synthetic_params(wildcards):
    return config["datasets"][wildcards.dataset]


def run_seed(wildcards):
    return RunSpec.parse(wildcards.run).seed


def run_split(wildcards):
    return (
        f"results/{wildcards.preset}/data/{wildcards.dataset}/split_s{run_seed(wildcards)}.parquet"
    )


def run_degrees(wildcards):
    return f"results/{wildcards.preset}/data/{wildcards.dataset}/degrees_s{run_seed(wildcards)}.parquet"


def preset_datasets():
    """Datasets that the selected preset's experiments use, in config order."""
    used = {d for exp in config["experiments"].values() for d in exp["datasets"]}
    return [d for d in config["datasets"] if d in used]


def engine_args(wildcards):
    """Engine flags from config.train; a changed setting reruns only the runs it affects."""
    t = config["train"]
    loss = RunSpec.parse(wildcards.run).loss
    return (
        f"--dim {t['dim']} --max-epochs {t['max_epochs']} --patience {t['patience']}"
        f" --batch-size {loss}={t['batch_size'][loss]} --k {config['evaluate']['k']}"
        f" --device {t['device']} --checkpoint-every {t['checkpoint_every']}"
        + (
            " --cosine-validation"
            if (wildcards.dataset, wildcards.run) in cosine_validation_runs()
            else ""
        )
    )


def experiment_tune(wildcards):
    return " ".join(config["experiments"][wildcards.experiment]["tune"])


def experiment_seeds(wildcards):
    return " ".join(map(str, config["experiments"][wildcards.experiment]["seeds"]))


# Packing on a cluster (docs/cluster.md): the group of the train rule. Runs go N to a group id
# (N: the profile's `group-components: runs: N`) and Snakemake submits each id as one job. Each id
# is a fixed set of runs, chosen when a run enters the DAG: Snakemake regroups whenever a
# checkpoint (select) updates the DAG, and an id whose members change while its job is queued
# or running breaks Snakemake's bookkeeping (snakemake#4202, #2151: steps past 100 %, KeyError:
# JobGroup), which one plain group `runs` with group-components does. Local runs have no groups.
PACK_GROUP = "runs"


def pack_size():
    return max(1, int(workflow.group_settings.group_components.get(PACK_GROUP, 1)))


@functools.cache
def initial_packs():
    """Pack number of each run known before any selection (candidates, untuned grids)."""
    runs = sorted(
        {(d, s.run_id) for name in config["experiments"] for d, s in candidate_runs(name)}
    )
    return {run: i // pack_size() for i, run in enumerate(runs)}


@functools.cache
def selection_packs(path, mtime_ns):
    """Pack number of each run that a selection file adds to the initial ones."""
    table = pd.read_parquet(path, columns=["dataset", "run"])
    added = sorted(set(zip(table["dataset"], table["run"])) - set(initial_packs()))
    return {run: i // pack_size() for i, run in enumerate(added)}


def run_pack(wildcards):
    """Group id of a run's train job: runs-<k> for the initial runs, runs-<experiment>-<k> for
    the runs a selection adds (packed per experiment, with the first selection that lists them)."""
    from pathlib import Path

    run = (wildcards.dataset, wildcards.run)
    group = None
    if run in initial_packs():
        group = f"{PACK_GROUP}-{initial_packs()[run]}"
    elif hasattr(rules, "select"):
        for name, exp in config["experiments"].items():
            path = Path(expand(rules.select.output[0], preset=PRESET, experiment=name)[0])
            if exp["tune"] and path.exists():
                packs = selection_packs(path, path.stat().st_mtime_ns)
                if run in packs:
                    group = f"{PACK_GROUP}-{name}-{packs[run]}"
                    break
    group = group or f"{PACK_GROUP}-{wildcards.dataset}-{wildcards.run}"
    # group-components: runs applies to every pack id (as to wildcard groups of one name)
    workflow.parent_groupids[group] = PACK_GROUP
    return group
