"""The DAG itself: tiny end to end, reruns, single targets, config errors, paper dry run."""

import re
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, SINGLE_TARGET, copy_workflow, snakemake
from prism_repro import artifacts, grid
from prism_repro.config import resolve_config

pytestmark = pytest.mark.slow


def resolved(preset: str) -> dict:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    return resolve_config(raw, REPO / "workflow/schemas/config.schema.yaml", {"preset": preset})


def tiny_config() -> dict:
    return resolved("tiny")


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    block = (
        dry_run_stdout.split("Job stats:")[1].split("Reasons:")[0]
        if "Job stats:" in dry_run_stdout
        else ""
    )
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m[1] != "total"
    }


def test_tiny_preset_builds_every_artifact(tiny_run):
    out = tiny_run / "results" / "tiny"
    experiments = tiny_config()["experiments"]
    figures = artifacts.available(artifacts.FIGURE_EXPERIMENTS, experiments)
    tables = artifacts.available(artifacts.TABLE_EXPERIMENTS, experiments)
    assert figures == list(artifacts.FIGURE_EXPERIMENTS)  # every figure of the paper
    assert set(tables) == {"table1", "table2", "runs", "claims"}
    for path in (
        [f"figures/{f}.{ext}" for f in figures for ext in ("png", "pdf")]
        + [f"tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")]
        + ["theory/powerlaw.parquet", "metrics/fig1.parquet"]
    ):
        assert (out / path).stat().st_size > 0, path
    metrics = pd.read_parquet(out / "metrics" / "fig1.parquet")
    assert (
        len(metrics) == 2 * 3 * 2 and not metrics["diverged"].any()
    )  # losses x weight decays x seeds
    # strata sum to the overall NDCG; a trained model beats random ranking (NDCG@20 ~ 20/400 here)
    parts = metrics[["test_ndcg_popular", "test_ndcg_neutral", "test_ndcg_unpopular"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(metrics["test_ndcg"].to_numpy(), abs=1e-9)
    # random ranking: about 0.025 here; BPR at weight decay 1e-2 is over-regularised (as the paper
    # finds for BPR at 1e-4 on real data) and may collapse
    sane = metrics[(metrics["weight_decay"] <= 1e-4) | (metrics["loss"] != "bpr")]
    assert (sane["test_ndcg"] > 0.05).all()
    for col in [
        "git_commit",
        "version_torch",
        "device",
        "best_epoch",
        "epochs_run",
        "train_seconds",
    ]:
        assert col in metrics


def test_tiny_table1_and_claims_are_the_packages_tables_of_its_runs(tiny_run):
    from prism_repro.claims import claims_table
    from prism_repro.table1 import table1

    out = tiny_run / "results" / "tiny"
    runs = {
        e: pd.read_parquet(out / "metrics" / f"{e}.parquet") for e in tiny_config()["experiments"]
    }
    # Table 1: both methods and a % diff for each of the 2 backbones x 3 losses on Synthetic
    written = pd.read_csv(out / "tables" / "table1.csv")
    assert written["method"].value_counts().to_dict() == {"tuned_wd": 6, "prism": 6, "pct_diff": 6}
    wd = runs["table1_wd"]
    assert (wd["seed"].value_counts() == 6).all() and wd["seed"].nunique() == 2  # every seed
    expected = table1(pd.concat([wd, runs["table1_prism"]], ignore_index=True))
    pd.testing.assert_frame_equal(
        written[expected.columns], expected, check_dtype=False, check_exact=False, rtol=1e-9
    )
    # the claims table: every claim of an experiment the preset runs has a verdict
    claims = pd.read_csv(out / "tables" / "claims.csv")
    norms = pd.concat(
        [pd.read_parquet(out / "metrics" / f"{e}_norms.parquet") for e in runs], ignore_index=True
    )
    theory = pd.concat(
        [pd.read_parquet(p) for p in sorted((out / "theory").glob("*.parquet"))], ignore_index=True
    )
    metrics = pd.concat(runs.values(), ignore_index=True)
    recomputed = claims_table(metrics, norms, theory)
    assert claims["claim"].tolist() == recomputed["claim"].tolist()
    assert claims["verdict"].tolist() == recomputed["verdict"].tolist()
    np.testing.assert_allclose(claims["ours"], recomputed["ours"], rtol=1e-9)
    # the claims on Table 1, PRISM's alpha, batched decay, LightGCN and magnitudes: all checked
    checked = claims[
        claims["claim"].str.startswith(
            (
                "PRISM vs tuned weight decay",
                "PRISM with tuned alpha",
                "Batched weight decay",
                "LightGCN is insensitive",
                "Item magnitude follows popularity",
            )
        )
    ]
    assert len(checked) == 8
    assert set(checked["verdict"]) <= {"reproduced", "not reproduced"}  # none "not run"


def test_second_run_does_nothing_and_plot_option_reruns_only_the_plot(tiny_run):
    again = snakemake(tiny_run, "-n", "--config", "preset=tiny")
    assert "Nothing to be done" in again.stdout + again.stderr
    restyled = snakemake(tiny_run, "-n", "--config", "preset=tiny", "figures={style: ticks}")
    assert set(job_counts(restyled.stdout)) == {"figure", "all"}  # every figure, nothing else


def test_one_runs_metrics_path_builds_only_its_chain(tiny_build):
    # tiny_build built SINGLE_TARGET alone from a fresh copy before building everything
    assert job_counts(tiny_build.single_target_dry_run) == {
        "synthetic_dataset": 1,
        "preprocess": 1,
        "split": 1,
        "degrees": 1,
        "train": 1,
    }
    built = tiny_build.after_single_target
    assert SINGLE_TARGET in built
    runs = {p.split("/")[4] for p in built if p.startswith("results/tiny/runs/")}
    assert runs == {SINGLE_TARGET.split("/")[4]}
    assert not any(p.startswith(("results/tiny/metrics/", "results/tiny/figures/")) for p in built)


def test_misspelled_config_key_fails_in_one_line_before_any_job(workflow_copy):
    cfg = workflow_copy / "config.yaml"
    cfg.write_text(cfg.read_text().replace("  patience: 10\n", "  patiense: 10\n", 1))
    proc = snakemake(workflow_copy, "--cores", "1", "--config", "preset=tiny", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "patiense" in line]
    assert len(errors) == 1 and "allowed keys" in errors[0] and "patience" in errors[0]
    assert not (workflow_copy / "results").exists()


def test_a_bad_command_line_value_names_the_key(workflow_copy):
    # the other config errors are checked in process (test_config_errors.py)
    proc = snakemake(workflow_copy, "-n", "--config", "preset=nope", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "'preset'" in line]
    assert len(errors) == 1 and "allowed values" in errors[0] and "tiny" in errors[0]


@pytest.fixture(scope="module")
def paper_dag_counts(tmp_path_factory) -> dict[str, int]:
    """Job counts of the paper preset's whole DAG (a dry run), for the tests that read them."""
    root = copy_workflow(tmp_path_factory.mktemp("paper-dag"))
    t0 = time.perf_counter()
    counts = job_counts(snakemake(root, "-n", "--quiet", "rules").stdout)
    print(
        f"paper preset dry run: {sum(counts.values())} jobs before selection in {time.perf_counter() - t0:.1f} s"
    )
    return counts


def test_paper_preset_dry_run_builds_the_full_dag(paper_dag_counts):
    counts = paper_dag_counts
    # every tuning candidate of the paper grid, each once (its size is pinned by hand in
    # test_paper_preset.py), and one selection per tuned experiment
    from prism_repro.grid import all_candidate_runs

    paper = resolved("paper")
    assert counts["train"] == len(all_candidate_runs(paper)) and counts.get("all") == 1
    assert counts["select"] == sum(bool(e["tune"]) for e in paper["experiments"].values())


def test_paper_preset_dag_has_figure_9_and_its_baselines(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "results/paper/figures/fig9.png")
    counts = job_counts(proc.stdout)
    assert counts["figure"] == 1 and counts["select"] == 2  # fig9 and fig4
    for loss in ("_resn-w", "_ipl-w", "_macr_"):  # every baseline has tuning candidates
        assert loss in proc.stdout, loss


def test_one_figure_schedules_only_what_it_needs(workflow_copy):
    dry = snakemake(
        workflow_copy,
        "-n",
        "--cores",
        "1",
        "results/tiny/figures/fig8.png",
        "--config",
        "preset=tiny",
    )
    counts = job_counts(dry.stdout)
    # fig8: LightGCN + DirectAU at 2 weight decays x 2 seeds, no tuning
    assert counts["train"] == 4 and counts["aggregate"] == 1 and counts["figure"] == 1
    assert "select" not in counts and "table" not in counts


def test_figure_7_schedules_the_simulation_only(workflow_copy, paper_dag_counts):
    dry = snakemake(
        workflow_copy,
        "-n",
        "--cores",
        "1",
        "results/tiny/figures/fig7.png",
        "--config",
        "preset=tiny",
    )
    assert job_counts(dry.stdout) == {"simulate": 1, "figure": 1}
    # the paper preset simulates the power-law graph and Gowalla's train split
    assert paper_dag_counts["simulate"] == 2


def test_deleting_one_runs_results_reruns_only_it_and_the_aggregation(tiny_run):
    selection = pd.read_parquet(tiny_run / "results/tiny/metrics/table1_prism_selection.parquet")
    later_seed = selection[selection["seed"] != selection["seed"].min()].iloc[0]
    run_metrics = f"results/tiny/runs/{later_seed['dataset']}/{later_seed['run']}/metrics.parquet"
    (tiny_run / run_metrics).unlink()
    # Snakemake does not rebuild a missing intermediate file for an up-to-date target on its
    # own: name the run beside the table (README, "Partial reruns")
    dry = snakemake(
        tiny_run,
        "-n",
        "--cores",
        "1",
        "results/tiny/tables/table1.csv",
        run_metrics,
        "--config",
        "preset=tiny",
    )
    assert job_counts(dry.stdout) == {"train": 1, "aggregate": 1, "table": 1}


def dry_run_runs(stdout: str, rule: str = "train") -> set[str]:
    """Run ids of the ``rule`` jobs a dry run lists."""
    # a job's block starts at its "rule <name>:" line, indented when the job is in a group
    # (train jobs are: run packs, packs.smk)
    blocks = re.split(r"\n\s*(?:local)?rule (?=\w+:)", stdout)[1:]
    runs = set()
    for block in blocks:
        if block.startswith(f"{rule}:"):
            m = re.search(r"run=([^,\s]+)", block)
            if m:
                runs.add(m[1])
    return runs


def test_changing_a_variant_key_reruns_only_that_variants_runs(tiny_run):
    built = {p.name for p in (tiny_run / "results/tiny/runs/Synthetic").iterdir()}
    released = {r for r in built if r.endswith("_vreleased")}
    assert released and released != built  # the tiny preset trains fig10 under both variants
    dry = snakemake(
        tiny_run, "-n", "--config", "preset=tiny", "variants={released: {ssm_negatives: 10}}"
    )
    assert dry_run_runs(dry.stdout) == released
    # a key of the default variant that released overrides anyway changes nothing it trains
    dry = snakemake(
        tiny_run, "-n", "--config", "preset=tiny", "variants={released: {nlmf_relu: false}}"
    )
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_nested_command_line_overrides_are_typed_and_range_checked(tiny_run):
    built = {p.name for p in (tiny_run / "results/tiny/runs/Synthetic").iterdir()}
    dry = snakemake(tiny_run, "-n", "--config", "preset=tiny", "train={max_epochs: 30}")
    # 30 (an integer) reaches every run's engine flags: every candidate reruns (the runs that
    # selection adds wait for the selections, which rerun after them: not in a dry run)
    candidates = {spec.run_id for _, spec in grid.all_candidate_runs(tiny_config())}
    assert dry_run_runs(dry.stdout) == candidates and candidates < built
    bad = snakemake(tiny_run, "-n", "--config", "preset=tiny", "train={dim: -4}", check=False)
    assert bad.returncode != 0
    assert "train.dim" in bad.stderr and "out of range" in bad.stderr and "minimum 1" in bad.stderr
