"""Cluster profiles: what they ask for, how `--profile slurm` finds ours, and (where a SLURM
cluster is up, e.g. under `make slurm-test`) a fake-GPU step. The end-to-end run through SLURM
is `make slurm-test` (.ci/slurm/test.sh), not a pytest."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow, snakemake

SLURM_PROFILE = REPO / "profiles" / "slurm"
WORKFLOW_PROFILE = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
CLUSTER_PROFILE = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())


def make_slurm_profile(config_home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), "slurm-profile"], env=env, capture_output=True, text=True
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_slurm_profile_links_once_and_never_overwrites(tmp_path):
    link = tmp_path / "snakemake" / "slurm"
    first = make_slurm_profile(tmp_path)
    assert first.returncode == 0, first.stderr
    assert link.is_symlink() and link.resolve() == SLURM_PROFILE.resolve()
    again = make_slurm_profile(tmp_path)
    assert again.returncode == 0 and "already" in again.stdout
    other = tmp_path / "other"
    (other / "snakemake" / "slurm").mkdir(parents=True)
    mine = other / "snakemake" / "slurm" / "config.yaml"
    mine.write_text("executor: slurm\n")
    refused = make_slurm_profile(other)
    assert refused.returncode != 0 and "left alone" in refused.stderr
    assert mine.read_text() == "executor: slurm\n"


def test_workflow_profile_asks_a_gpu_for_training_only():
    assert "default-resources" not in WORKFLOW_PROFILE  # it would replace the cluster profile's
    resources = WORKFLOW_PROFILE["set-resources"]
    assert resources["train"]["gpu"] == 1  # training also evaluates
    assert resources["train"]["runtime"] > 0 and resources["train"]["mem_mb"] > 0
    small = {rule: r for rule, r in resources.items() if rule != "train"}
    assert small and all("gpu" not in r and r["mem_mb"] <= 4000 for r in small.values())


def test_cluster_profile_leaves_account_and_partition_to_the_user_and_packs_runs():
    assert CLUSTER_PROFILE["executor"] == "slurm"
    assert CLUSTER_PROFILE["slurm-requeue"] is True and CLUSTER_PROFILE["retries"] >= 1
    assert not {"slurm_account", "slurm_partition"} & set(CLUSTER_PROFILE["default-resources"])
    # training is packed by its own group (run_pack in common.smk); a profile group would replace it
    assert "train" not in CLUSTER_PROFILE["groups"]
    assert CLUSTER_PROFILE["group-components"]["runs"] > 1
    # one GPU per packed job, its runs one after another
    assert CLUSTER_PROFILE["resources"]["gpu"] == 1
    assert CLUSTER_PROFILE["set-resource-scopes"]["gpu"] == "local"


PACK_SIZE = 3


@pytest.fixture(scope="module")
def cluster_dry_run(tmp_path_factory):
    """One dry run of the tiny preset through the SLURM profile, runs packed by three."""
    root = copy_workflow(tmp_path_factory.mktemp("slurm"))
    return snakemake(
        root,
        "-n",
        "--profile",
        str(root / "profiles" / "slurm"),
        "--group-components",
        f"runs={PACK_SIZE}",
        "--config",
        "preset=tiny",
    )


@pytest.mark.slow
def test_cluster_dry_run_packs_training_runs(cluster_dry_run):
    size, dry = PACK_SIZE, cluster_dry_run
    sizes, group = {}, None
    for line in dry.stdout.splitlines():
        if m := re.match(r"\[.*\] Group job (\S+) ", line):
            group = m[1] if m[1].startswith("runs-") else None
        elif re.match(r"\[|(local)?rule ", line):  # a job outside any group
            group = None
        elif group and line == "    rule train:":
            sizes[group] = sizes.get(group, 0) + 1
    trains = int(re.search(r"^train\s+(\d+)$", dry.stdout, re.M)[1])  # the job stats table
    assert sizes and all(0 < n <= size for n in sizes.values()), sizes
    assert sum(sizes.values()) == trains and len(sizes) == -(
        -trains // size
    )  # full packs but the last


@pytest.mark.slow
def test_profiles_name_real_rules_and_options(cluster_dry_run):
    rules = {
        m[1]
        for smk in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]
        for m in re.finditer(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), re.M)
    }
    assert {"train", "select", "figure", "all"} <= rules
    named = set(WORKFLOW_PROFILE["set-resources"]) | set(CLUSTER_PROFILE["groups"])
    assert named <= rules, f"profiles name unknown rules: {named - rules}"
    # every key of both profiles is an option this Snakemake and the SLURM plugin accept: the
    # dry run through them succeeded (snakemake() raises otherwise) and read both
    dry = cluster_dry_run
    assert "Using profile" in dry.stderr and "profiles/default" in dry.stderr


def slurm_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    try:
        out = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "UP" in out


@pytest.mark.skipif(not slurm_up(), reason="no SLURM cluster up (make slurm-test brings one up)")
def test_fake_gpu_sets_cuda_visible_devices_but_training_falls_back_to_cpu(tmp_path):
    code = (
        "import os, torch\nfrom prism_repro.train import resolve_device\n"
        "print(os.environ.get('CUDA_VISIBLE_DEVICES'), torch.cuda.is_available(), resolve_device('auto'))"
    )
    proc = subprocess.run(
        ["srun", "-t", "2", "--gpus=1", sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "gres" in proc.stderr.lower():
        pytest.skip(f"the cluster has no GPUs to request: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    visible, available, device = proc.stdout.split()
    assert visible != "None" and device == ("cuda" if available == "True" else "cpu")
