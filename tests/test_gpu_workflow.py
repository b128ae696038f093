"""Training jobs of the tiny preset through Snakemake on simulated GPUs (PRISM_FAKE_GPUS): each
job records the device and slot it held, and jobs that ran at the same time never shared one."""

import re
from datetime import datetime

import pandas as pd
import pytest

from conftest import copy_workflow, snakemake
from prism_repro.devices import FAKE_GPUS_ENV, LOCK_DIR_ENV

pytestmark = pytest.mark.slow

# two runs of several seconds each, started together by `--cores 2`
RUNS = [
    "mf_directau-g1_full0.0001_xavier_lr0.01_s123",
    "mf_directau-g1_full0.01_xavier_lr0.01_s123",
]
TARGETS = [f"results/tiny/runs/Synthetic/{run}/metrics.parquet" for run in RUNS]
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO "


def log_time(text: str, pattern: str) -> datetime:
    stamp = re.search(STAMP + pattern, text, re.M)[1]
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


# epochs per run, tried in turn until two jobs overlap: a tiny run of 40 epochs takes about a
# second, which a loaded machine's process start-up can exceed; 400 take several seconds
EPOCHS = (40, 400)


def write_epochs(root, epochs: int) -> None:
    (root / "longer.yaml").write_text(
        f"presets:\n  tiny:\n    train: {{max_epochs: {epochs}, patience: {epochs}, "
        "device: auto}\n"
    )


@pytest.fixture(scope="module")
def fake_gpu_copy(tmp_path_factory):
    """One workflow copy for both tests, its data stage built once; runs of 40 epochs (patience
    40) so that two jobs started together hold their slots at the same time."""
    root = copy_workflow(tmp_path_factory.mktemp("fake-gpus"))
    write_epochs(root, EPOCHS[0])
    # the data stage of the runs only (degrees needs the split)
    snakemake(root, "--cores", "2", *CONFIG, "--until", "degrees", "--", *TARGETS)
    return root


# device auto: what a GPU machine runs; auto takes a (simulated) GPU
CONFIG = ("--configfile", "longer.yaml", "--config", "preset=tiny")


def train_on_fake_gpus(root, monkeypatch, devices: int, runs_per_gpu: int) -> pd.DataFrame:
    """The two runs at the same time (trained again if the other test trained them); per
    run: its metrics row and the time span from taking its slot to its last log line (the slot
    is held until the process ends)."""
    monkeypatch.setenv(FAKE_GPUS_ENV, str(devices))
    monkeypatch.setenv(LOCK_DIR_ENV, str(root / "gpu-locks"))
    targets = TARGETS
    snakemake(
        root,
        "--cores",
        "2",
        "--resources",
        f"gpu={devices * runs_per_gpu}",
        "--forcerun",
        "train",
        *CONFIG,
        f"runs_per_gpu={runs_per_gpu}",
        "--",
        *targets,
    )
    rows = []
    for run, target in zip(RUNS, targets):
        row = pd.read_parquet(root / target).iloc[0].to_dict()
        log = (root / f"results/tiny/logs/train/Synthetic/{run}.log").read_text()
        row["start"] = log_time(log, r"GPU slot ")
        row["end"] = log_time(log, r"done: ")
        rows.append(row)
    return pd.DataFrame(rows)


def train_overlapping(root, monkeypatch, devices: int, runs_per_gpu: int):
    """The runs and the pairs of them that held their slots at the same time, with longer runs
    when the first try had none."""
    for epochs in EPOCHS:
        write_epochs(root, epochs)
        runs = train_on_fake_gpus(root, monkeypatch, devices, runs_per_gpu)
        if pairs := overlapping_pairs(runs):
            break  # longer.yaml stays as these runs were trained (later dry runs read it)
    return runs, pairs


def overlapping_pairs(runs: pd.DataFrame) -> list[tuple[int, int]]:
    return [
        (a, b)
        for a in range(len(runs))
        for b in range(a + 1, len(runs))
        if runs["start"][a] < runs["end"][b] and runs["start"][b] < runs["end"][a]
    ]


def test_each_job_runs_on_a_gpu_of_its_own(fake_gpu_copy, monkeypatch):
    runs, pairs = train_overlapping(fake_gpu_copy, monkeypatch, devices=2, runs_per_gpu=1)
    assert set(runs["gpu_device"]) <= {"fake0", "fake1"} and set(runs["gpu_slot"]) == {0}
    assert runs["gpu_simulated"].all() and (runs["runs_per_gpu"] == 1).all()
    assert (runs["device"] == "cpu").all()  # simulated GPUs compute on the CPU
    assert pairs, "no two jobs ran at the same time: nothing was checked"
    for a, b in pairs:
        assert runs["gpu_device"][a] != runs["gpu_device"][b], runs.loc[[a, b]]
    assert not runs["diverged"].any() and (runs["test_ndcg"] > 0).all()


def test_k_runs_share_one_gpu(fake_gpu_copy, monkeypatch):
    runs, pairs = train_overlapping(fake_gpu_copy, monkeypatch, devices=1, runs_per_gpu=2)
    assert set(runs["gpu_device"]) == {"fake0"} and set(runs["gpu_slot"]) <= {0, 1}
    assert (runs["runs_per_gpu"] == 2).all()
    assert pairs, "no two jobs ran at the same time: nothing was checked"
    for a, b in pairs:  # at the same time on the one device, in different slots
        assert runs["gpu_slot"][a] != runs["gpu_slot"][b], runs.loc[[a, b]]


def test_runs_per_gpu_reruns_nothing(fake_gpu_copy):
    """How many runs share a GPU is how, not what: a trained run is not trained again."""
    targets = TARGETS
    for k in ("1", "3"):
        dry = snakemake(fake_gpu_copy, "-n", *CONFIG, f"runs_per_gpu={k}", "--", *targets)
        assert "Nothing to be done" in dry.stdout + dry.stderr
