# Config resolution (preset + schema), run grids, and the path helpers rules share.
import itertools
import re
import sys

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


wildcard_constraints:
    preset=re.escape(PRESET),
    dataset="|".join(re.escape(d) for d in config["datasets"]),
    run=RUN_ID_PATTERN,
    seed="[0-9]+",


def experiment_runs(name):
    """(dataset, RunSpec) for every run of an experiment grid."""
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
        exp["seeds"],
    ):
        for alpha in exp["alpha"] if init == "prism" else [0.0]:
            for gamma in exp["gamma"] if loss == "directau" else [1.0]:
                spec = RunSpec(backbone, loss, decay, wd, init, alpha, lr, seed, gamma)
                runs.append((dataset, spec))
    return list(dict.fromkeys(runs))


def experiment_metrics(wildcards):
    """Metrics parquets of every run of the experiment named by the wildcard."""
    return [
        f"results/{PRESET}/runs/{dataset}/{spec.run_id}/metrics.parquet"
        for dataset, spec in experiment_runs(wildcards.experiment)
    ]


def run_metrics_targets():
    return sorted(
        {
            f"results/{PRESET}/runs/{dataset}/{spec.run_id}/metrics.parquet"
            for name in config["experiments"]
            for dataset, spec in experiment_runs(name)
        }
    )


def figure_targets():
    return expand(
        "results/{preset}/figures/{figure}.{ext}",
        preset=PRESET,
        figure=FIGURES,
        ext=["png", "pdf"],
    )


def table_targets():
    return expand(
        "results/{preset}/tables/{table}.{ext}",
        preset=PRESET,
        table=TABLES,
        ext=["csv", "md"],
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
        f" --device {t['device']}"
    )
