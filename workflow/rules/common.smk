# Config resolution (preset + schema), then the input functions and parameters rules share.
# The grid, the artifacts and the variants live in the package (prism_repro.grid, .artifacts,
# .variants); this file only turns them into paths.
import functools
import re
import sys
from pathlib import Path

import pandas as pd

from prism_repro import artifacts, grid
from prism_repro.config import ConfigError, resolve_config
from prism_repro.runspec import DEFAULT_VARIANT, RunSpec, run_id_pattern
from prism_repro.variants import VARIANT_KEYS, data_variant, variant_settings

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
EXPERIMENTS = config["experiments"]


wildcard_constraints:
    preset=re.escape(PRESET),
    dataset="|".join(re.escape(d) for d in config["datasets"]),
    dvariant="|".join(re.escape(v) for v in config["variants"]),
    run=run_id_pattern(list(config["variants"])),
    seed="[0-9]+",
    experiment="|".join(re.escape(e) for e in EXPERIMENTS),
    figure="|".join(artifacts.FIGURE_EXPERIMENTS),
    table="|".join(t for t in artifacts.TABLE_EXPERIMENTS if t != "table2"),


def run_file(preset, dataset, run, name):
    return f"results/{preset}/runs/{dataset}/{run}/{name}"


def candidate_metrics(wildcards):
    return [
        run_file(wildcards.preset, dataset, spec.run_id, "metrics.parquet")
        for dataset, spec in grid.candidate_runs(config, wildcards.experiment)
    ]


def final_runs(wildcards):
    """(dataset, run id) of the runs an experiment reports: the selected settings x all seeds."""
    if not EXPERIMENTS[wildcards.experiment]["tune"]:
        return [(d, s.run_id) for d, s in grid.experiment_runs(config, wildcards.experiment)]
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
    return [
        run_file(PRESET, dataset, spec.run_id, "metrics.parquet")
        for dataset, spec in grid.all_candidate_runs(config)
    ]


@functools.cache
def cosine_validation_runs():
    return grid.cosine_validation_runs(config)


def experiment_tables(suffix):
    """Input function: the aggregated ``<experiment><suffix>.parquet`` of each needed experiment."""

    def files(wildcards):
        name = wildcards.figure if "figure" in wildcards.keys() else wildcards.table
        needs = artifacts.needed_experiments(name, EXPERIMENTS)
        return [f"results/{wildcards.preset}/metrics/{e}{suffix}.parquet" for e in needs]

    return files


def figure_targets():
    return expand(
        "results/{preset}/figures/{figure}.{ext}",
        preset=PRESET,
        figure=artifacts.available(artifacts.FIGURE_EXPERIMENTS, EXPERIMENTS),
        ext=["png", "pdf"],
    )


def table_targets():
    return expand(
        "results/{preset}/tables/{table}.{ext}",
        preset=PRESET,
        table=artifacts.available(artifacts.TABLE_EXPERIMENTS, EXPERIMENTS),
        ext=["csv", "md", "tex"],
    )


# -- data -----------------------------------------------------------------------------------


def dataset_source(name):
    return config["datasets"][name]["source"]


def raw_dataset_files(wildcards):
    """The raw files a dataset's preprocessing reads."""
    if dataset_source(wildcards.dataset) == "synthetic":
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
    from prism_repro.data.download import dataset_files
    from prism_repro.errors import UserError

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


def data_setting(wildcards, key):
    return variant_settings(config, wildcards.dvariant)[key]


def preprocess_options(wildcards):
    """Source-specific flags: MovieLens's rating threshold (variant key movielens_min_rating)."""
    if dataset_source(wildcards.dataset) != "movielens":
        return ""
    return f"--min-rating {data_setting(wildcards, 'movielens_min_rating')}"


def strata_degrees(wildcards):
    return data_setting(wildcards, "strata_degrees")


def synthetic_params(wildcards):
    return config["datasets"][wildcards.dataset]


def preset_datasets():
    """Datasets that the selected preset's experiments use, in config order."""
    used = {d for exp in EXPERIMENTS.values() for d in exp["datasets"]}
    return [d for d in config["datasets"] if d in used]


# -- training -------------------------------------------------------------------------------


def run_data_file(wildcards, stem):
    spec = RunSpec.parse(wildcards.run)
    folder = data_variant(config, spec.variant)
    return (
        f"results/{wildcards.preset}/data/{wildcards.dataset}/{folder}/{stem}_s{spec.seed}.parquet"
    )


def run_split(wildcards):
    return run_data_file(wildcards, "split")


def run_degrees(wildcards):
    return run_data_file(wildcards, "degrees")


def engine_args(wildcards):
    """Engine flags from config.train and the run's variant; a changed setting reruns only the
    runs it affects."""
    t = config["train"]
    spec = RunSpec.parse(wildcards.run)
    settings = variant_settings(config, spec.variant)
    variant = " ".join(
        f"{k}={settings[k]}" for k, key in VARIANT_KEYS.items() if key.level == "engine"
    )
    cosine = (wildcards.dataset, wildcards.run) in cosine_validation_runs()
    return (
        f"--dim {t['dim']} --max-epochs {t['max_epochs']} --patience {t['patience']}"
        f" --batch-size {t['batch_size'][spec.loss]} --k {config['evaluate']['k']}"
        f" --device {t['device']} --checkpoint-every {t['checkpoint_every']}"
        f" --variant {variant}" + (" --cosine-validation" if cosine else "")
    )


def experiment_tune(wildcards):
    return " ".join(EXPERIMENTS[wildcards.experiment]["tune"])


def experiment_seeds(wildcards):
    return " ".join(map(str, EXPERIMENTS[wildcards.experiment]["seeds"]))


# -- the run record (record.smk) ----------------------------------------------------------


def record_csv(wildcards):
    if not config["record"]:
        raise WorkflowError(
            "the record rules need `record: <csv>` in the preset (or --config record=<csv>)"
        )
    return config["record"]


def experiment_record_rows(wildcards):
    """The record row of every candidate and every final run of the experiment wildcard."""
    runs = {(d, s.run_id) for d, s in grid.candidate_runs(config, wildcards.experiment)}
    runs |= set(final_runs(wildcards))
    return sorted(run_file(wildcards.preset, d, r, "record.csv") for d, r in runs)


def record_dirs(wildcards, input):
    return " ".join(str(Path(p).parent) for p in input)


def record_targets():
    """Every run known before selection (recorded as soon as it ends, while selection waits for
    the others), then each experiment's file (its final runs too)."""
    if not config["record"]:
        return []
    runs = [
        run_file(PRESET, dataset, spec.run_id, "record.csv")
        for dataset, spec in grid.all_candidate_runs(config)
    ]
    return runs + expand(
        "results/{preset}/record/{experiment}.csv", preset=PRESET, experiment=EXPERIMENTS
    )


# -- the theory's simulation (theory.smk) --------------------------------------------------

THEORY_GRAPH = "powerlaw"  # the synthetic graph; the others are datasets' train splits


def theory_graphs():
    return [THEORY_GRAPH, *config["theory"]["datasets"]]


def theory_split(wildcards):
    """The split a dataset graph's simulation reads (none for the power-law graph)."""
    if wildcards.graph == THEORY_GRAPH:
        return []
    seed = config["theory"]["split_seed"]
    return [f"results/{wildcards.preset}/data/{wildcards.graph}/{DEFAULT_VARIANT}/split_s{seed}.parquet"]


def simulate_args(wildcards):
    """Flags of `prism_repro simulate` from config.theory; the graph's source first."""
    t = config["theory"]
    if wildcards.graph == THEORY_GRAPH:
        g = t["graph"]
        source = (
            f"--users {g['users']} --items {g['items']} --interactions {g['interactions']}"
            f" --zipf-exponent {g['zipf_exponent']} --graph-seed {g['seed']}"
        )
    else:
        source = f"--split {theory_split(wildcards)[0]} --name {wildcards.graph}"
    return (
        f"{source} --scenarios {' '.join(t['scenarios'])}"
        f" --batch-fractions {' '.join(map(str, t['batch_fractions']))}"
        f" --steps {t['steps']} --burn-in {t['burn_in']} --dim {t['dim']} --lr {t['lr']}"
        f" --weight-decay {t['weight_decay']} --cos-sq {t['cos_sq']} --negatives {t['negatives']}"
        f" --degree-bins {t['degree_bins']} --seed {t['seed']} --device {t['device']}"
    )


def figure_theory_tables(wildcards):
    """Figure 7 draws the power-law graph's simulation; other figures none."""
    return (
        [f"results/{wildcards.preset}/theory/{THEORY_GRAPH}.parquet"]
        if wildcards.figure == "fig7"
        else []
    )


def claims_theory_tables(wildcards):
    """The claims table checks the theory on every simulated graph; other tables read none."""
    if wildcards.table != "claims":
        return []
    return [f"results/{wildcards.preset}/theory/{g}.parquet" for g in theory_graphs()]
