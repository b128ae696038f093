"""The grid, the run-id grammar and the registries: one name, one place."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from prism_repro import registry
from prism_repro.config import load_schema, resolve_config
from prism_repro.data.split import split_in_memory
from prism_repro.grid import all_candidate_runs, candidate_runs, experiment_runs, tunable_axes
from prism_repro.losses import LossBatch
from prism_repro.runspec import RunSpec, fmt_num, run_id_pattern
from prism_repro.train import EngineConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def resolved(preset="paper", raw=None):
    raw = raw or yaml.safe_load((REPO / "config.yaml").read_text())
    return resolve_config(raw, SCHEMA, {"preset": preset})


@pytest.fixture(scope="module")
def paper_ids():
    return [spec.run_id for _, spec in all_candidate_runs(resolved())]


def test_every_paper_run_id_round_trips_and_matches_the_wildcard(paper_ids):
    pattern = re.compile(run_id_pattern(list(resolved()["variants"])))
    assert len(paper_ids) > 1000
    for run_id in paper_ids:
        assert pattern.fullmatch(run_id), run_id
        assert RunSpec.parse(run_id).run_id == run_id


@pytest.mark.parametrize(
    "bad",
    [
        "mf_bpr_full_xavier_lr0.001_s123",  # decay strength missing
        "mf_bpr-g2_none_xavier_lr0.01_s1",  # BPR has no gamma
        "mf_bpr_none0.001_xavier_lr0.01_s1",  # no strength without decay
        "mf_directau_none_xavier_lr0.01_s1",  # DirectAU's gamma is always named
        "mf_bpr_none_prism_lr0.01_s1",  # PRISM's alpha missing
        "mf_bpr_none_xavier0.5_lr0.01_s1",  # xavier has no alpha
        "mf_bpr_full1e-6_xavier_lr0.01_s1",  # not canonical (1e-06)
        "mf_bpr_none_xavier_lr0.010_s1",  # not canonical
        "mf_bpr_none_xavier_lr0.01_s1_vpaper",  # the default variant is left out
        "mf_mawu-gi1-gu2_none_xavier_lr0.01_s1",  # parameters in registry order
        "gcn_bpr_none_xavier_lr0.01_s1",
        "mf_bpr_none_xavier_lr0.01_s1_vReleased",
    ],
)
def test_strict_parser_rejects_what_the_wildcard_rejects(bad):
    pattern = re.compile(run_id_pattern())
    with pytest.raises(ValueError):
        RunSpec.parse(bad)
    if pattern.fullmatch(bad):  # the wildcard may match a non-canonical spelling; parse may not
        assert "canonical" in _error(bad)


def _error(run_id):
    try:
        RunSpec.parse(run_id)
    except ValueError as err:
        return str(err)
    return ""


@pytest.mark.parametrize("value", [1e-6, 0.001, 0.1, 1.0, 0.25, 1.826, 123456789.0, 1.234567891e-5])
def test_numbers_in_ids_are_exact(value):
    assert float(fmt_num(value)) == value
    spec = RunSpec.make("mf", "directau", "full", value, "xavier", 0, 0.01, 1, gamma=2)
    assert RunSpec.parse(spec.run_id).weight_decay == value


def test_the_schema_allows_exactly_the_registry_names():
    schema = load_schema(SCHEMA)
    exp = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    assert exp["losses"]["items"]["enum"] == list(registry.LOSSES)
    assert exp["backbones"]["items"]["enum"] == list(registry.BACKBONES)
    assert exp["decay"]["items"]["enum"] == list(registry.DECAY_MODES)
    assert exp["init"]["items"]["enum"] == list(registry.INITS)
    assert exp["tune"]["items"]["enum"] == list(tunable_axes())
    for name in registry.loss_params():
        assert name in exp
    batch = schema["properties"]["train"]["properties"]["batch_size"]["default"]
    assert batch == {
        "bpr": 16384,
        "ssm": 16384,
        "directau": 4096,
        "mawu": 4096,
        "resn": 16384,  # BPR's
        "auresn": 4096,  # DirectAU's
        "ipl": 16384,  # BPR's
        "macr": 4096,  # MACR's Gowalla command
    }


def test_tuning_grid_uses_the_first_seed_and_mawu_gammas_only_on_movielens():
    config = resolved()
    cands = candidate_runs(config, "table1_wd")
    assert {s.seed for _, s in cands} == {123}
    mawu = {(d, s.params) for d, s in cands if s.loss == "mawu"}
    assert {p for d, p in mawu if d == "Gowalla"} == {()}  # published gammas
    assert len({p for d, p in mawu if d == "MovieLens1M"}) == 9


def toy_loss(batch: LossBatch, scale: float = 1.0) -> torch.Tensor:
    """A made-up loss for the extension test: pull positive pairs together by dot product."""
    return -scale * (batch.user * batch.pos).sum(-1).sigmoid().log().mean()


@pytest.fixture
def toy_registered():
    entry = registry.LossEntry(
        "toy",
        "Toy",
        "test_grid:toy_loss",
        batch_size=128,
        params=(registry.Param("scale", "c", 1.0, "loss scale"),),
        defaults={"scale": 1.0},
    )
    registry.register_loss(entry)
    try:
        yield entry
    finally:
        del registry.LOSSES["toy"]


def test_a_new_loss_needs_only_its_function_its_entry_and_the_config(toy_registered):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["presets"]["tiny"]["experiments"]["fig10"] = {"losses": ["toy"], "scale": [0.5, 2.0]}
    config = resolved("tiny", raw)  # the schema accepts the new loss and its parameter
    runs = experiment_runs(config, "fig10")
    ids = sorted({s.run_id for _, s in runs})
    assert "mf_toy-c0.5_full0.0001_xavier_lr0.01_s123" in ids
    spec = RunSpec.parse("mf_toy-c2_none_xavier_lr0.01_s1")
    assert spec.scale == 2.0
    from prism_repro.data.synthetic import generate

    baskets = generate(
        users=40, items=50, interactions_per_user=8, zipf_exponent=1.1, latent_dim=4, seed=3
    )
    pairs = np.array([(u, i) for u, b in enumerate(baskets) for i in b], dtype=np.int64)
    data = split_in_memory(pairs, 40, 50, seed=1)
    trainer = Trainer(spec, data, EngineConfig(dim=8, max_epochs=2, patience=2), "Synthetic")
    assert trainer.batch_size == 128 and trainer.hparams == {"scale": 2.0}
    state = trainer.fit()
    assert state.epoch == 2 and np.isfinite(state.rows[-1]["loss"])
