"""Variants: paper text vs released code, from the config to the engine's behaviour."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from prism_repro import losses as losses_mod
from prism_repro import train as train_mod
from prism_repro.config import ConfigError, resolve_config
from prism_repro.data.split import split_in_memory
from prism_repro.data.synthetic import generate
from prism_repro.grid import experiment_runs
from prism_repro.runspec import RunSpec
from prism_repro.train import ENGINE_VARIANT_KEYS, EngineConfig, Trainer
from prism_repro.variants import (
    VARIANT_KEYS,
    data_variant,
    render_paper_vs_code,
    variant_difference,
    variant_settings,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def raw_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def resolved(preset="paper", **cli):
    return resolve_config(raw_config(), SCHEMA, {"preset": preset, **cli})


def engine_cfg(config, variant, **kw):
    settings = variant_settings(config, variant)
    return EngineConfig(**{k: settings[k] for k in ENGINE_VARIANT_KEYS}, **kw)


@pytest.fixture(scope="module")
def data():
    baskets = generate(
        users=60, items=80, interactions_per_user=12, zipf_exponent=1.1, latent_dim=4, seed=3
    )
    pairs = np.array([(u, i) for u, b in enumerate(baskets) for i in b], dtype=np.int64)
    return split_in_memory(pairs, 60, 80, seed=1)


def test_docs_paper_vs_code_is_generated_from_the_variants():
    text = (REPO / "docs/paper-vs-code.md").read_text()
    assert text == render_paper_vs_code(resolved()), (
        "docs/paper-vs-code.md is stale: run `python -m prism_repro paper-vs-code`"
    )


def test_every_variant_key_is_documented_with_both_sides_and_each_value():
    config = resolved()
    text = render_paper_vs_code(config)
    for key in VARIANT_KEYS.values():
        assert f"`{key.name}`" in text and key.paper and key.released
        for name in config["variants"]:
            assert variant_settings(config, name)[key.name] in key.choices


def test_a_variant_is_described_by_the_keys_it_changes():
    config = {
        "variants": {
            "paper": {"negative_pool": "all", "nlmf_relu": True, "ssm_negatives": 10},
            "affine": {"nlmf_relu": False},
            "released": {"negative_pool": "batch", "nlmf_relu": False, "ssm_negatives": 20},
            "same": {"negative_pool": "all"},
        }
    }
    assert variant_difference(config, "affine") == "`nlmf_relu`: no activation (affine towers)"
    released = variant_difference(config, "released")
    assert "`negative_pool`: uniform over the batch's distinct positive items" in released
    assert "`ssm_negatives`" in released and "`nlmf_relu`" in released
    assert variant_difference(config, "same") == "the default"
    with pytest.raises(KeyError, match="unknown variant"):
        variant_difference(config, "nope")


def test_engine_defaults_are_the_paper_variant():
    config = resolved()
    paper = variant_settings(config, "paper")
    defaults = EngineConfig()
    for key in ENGINE_VARIANT_KEYS:
        assert getattr(defaults, key) == paper[key], key
    assert set(ENGINE_VARIANT_KEYS) == {k for k, v in VARIANT_KEYS.items() if v.level == "engine"}
    # and the schema's train defaults are the engine's
    train = resolve_config(raw_config(), SCHEMA, {"preset": "paper"})["train"]
    for key in ("dim", "max_epochs", "patience", "k", "device", "checkpoint_every"):
        if key in train:
            assert train[key] == getattr(defaults, key), key


def test_paper_defaults_follow_the_text():
    paper = variant_settings(resolved(), "paper")
    released = variant_settings(resolved(), "released")
    assert paper["negative_pool"] == "all" and released["negative_pool"] == "batch"
    assert paper["ssm_negatives"] == 10 and released["ssm_negatives"] == 20
    assert paper["nlmf_relu"] is True and released["nlmf_relu"] is False
    assert paper["strata_degrees"] == "train" and released["strata_degrees"] == "all"
    assert paper["movielens_min_rating"] == 3 and released["movielens_min_rating"] == 1


def test_variants_get_their_own_run_folders_and_data():
    config = resolved("tiny")
    runs = experiment_runs(config, "fig10")
    ids = [spec.run_id for _, spec in runs]
    assert len(ids) == len(set(ids))
    released = [i for i in ids if i.endswith("_vreleased")]
    assert released and len(released) == len(ids) / 2
    for _, spec in runs:
        assert RunSpec.parse(spec.run_id) == spec
    # the released variant's strata come from all splits: its own data folder
    assert data_variant(config, "released") == "released"
    assert data_variant(config, "paper") == "paper"


def _captured_batches(trainer, monkeypatch, n=1):
    seen = []
    real = losses_mod.compute_loss

    def spy(name, batch, **hp):
        seen.append(batch)
        return real(name, batch, **hp)

    monkeypatch.setattr(train_mod, "compute_loss", spy)
    perm = torch.arange(len(trainer.train_users))
    for b in range(n):
        trainer._batch_loss(perm[b * 256 : (b + 1) * 256])
    return seen


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_negative_pool_and_count_follow_the_variant(variant, data, monkeypatch):
    config = resolved()
    cfg = engine_cfg(config, variant, dim=8, batch_size=256)
    spec = RunSpec.parse("mf_ssm_full1e-06_xavier_lr0.01_s1")
    trainer = Trainer(spec, data, cfg, "Synthetic")
    neg_ids = []
    real = train_mod.sample_negatives

    def spy(items, num_items, k, gen, mode):
        out = real(items, num_items, k, gen, mode)
        neg_ids.append((items, out))
        return out

    monkeypatch.setattr(train_mod, "sample_negatives", spy)
    (batch,) = _captured_batches(trainer, monkeypatch)
    items, neg = neg_ids[0]
    assert losses_mod.negatives(batch).shape[1] == (20 if variant == "released" else 10)
    inside = torch.isin(neg, items).all().item()
    if variant == "released":
        assert inside  # the batch's distinct positive items only
    else:
        assert not inside  # uniform over all 80 items: some fall outside a batch's positives


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_nlmf_activation_follows_the_variant(variant, data):
    cfg = engine_cfg(resolved(), variant, dim=8)
    trainer = Trainer(RunSpec.parse("nlmf_directau-g1_none_xavier_lr0.01_s1"), data, cfg, "X")
    relus = [m for m in trainer.model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == (2 if variant == "paper" else 0)  # one per tower


@pytest.mark.parametrize("rows", ["unique", "interactions"])
def test_uniformity_rows_follow_the_variant_key(rows, data, monkeypatch):
    cfg = EngineConfig(dim=8, batch_size=256, uniformity_rows=rows)
    trainer = Trainer(RunSpec.parse("mf_directau-g1_none_xavier_lr0.01_s1"), data, cfg, "X")
    (batch,) = _captured_batches(trainer, monkeypatch)
    distinct = len(torch.unique(trainer.train_users[:256]))
    assert distinct < 256  # 60 users: a batch repeats users
    assert batch.users_unif.shape[0] == (256 if rows == "interactions" else distinct)


@pytest.mark.parametrize("scope", ["embeddings", "all"])
def test_decay_scope_follows_the_variant_key(scope, data):
    cfg = EngineConfig(dim=8, decay_params=scope)
    trainer = Trainer(RunSpec.parse("nlmf_mawu_full1e-06_xavier_lr0.01_s1"), data, cfg, "X")
    decayed = {
        id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]
    }
    tower = next(trainer.model.user_tower.parameters())
    margin = next(trainer.margins.parameters())
    assert id(trainer.model.user_emb.weight) in decayed
    assert (id(tower) in decayed) == (scope == "all")
    assert (id(margin) in decayed) == (scope == "all")


def test_fixed_batch_order_repeats_and_shuffled_does_not(data):
    spec = RunSpec.parse("mf_bpr_none_xavier_lr0.01_s1")
    fixed = Trainer(spec, data, EngineConfig(dim=8, batch_order="fixed"), "X")
    shuffled = Trainer(spec, data, EngineConfig(dim=8, batch_order="shuffled"), "X")
    n = len(fixed.train_users)
    assert torch.equal(fixed.epoch_order(n), fixed.epoch_order(n))
    assert not torch.equal(fixed.epoch_order(n), torch.arange(n))  # seeded, not file order
    assert not torch.equal(shuffled.epoch_order(n), shuffled.epoch_order(n))


@pytest.mark.parametrize("point", ["before_backward", "after_step"])
def test_mawu_clamp_point(point, data):
    cfg = EngineConfig(dim=8, batch_size=64, max_epochs=1, mawu_clamp=point)
    trainer = Trainer(RunSpec.parse("mf_mawu_none_xavier_lr0.5_s1"), data, cfg, "X")
    trainer.train_epoch()
    weights = torch.cat([p.detach().flatten() for p in trainer.margins.parameters()])
    inside = bool(((weights >= 0) & (weights <= 1)).all())
    # after the step every margin is in [0, 1]; clamped before the step, a large lr pushes some out
    assert inside == (point == "after_step")


def test_nested_command_line_values_are_typed():
    config = resolved("tiny", train={"max_epochs": "30"})
    assert config["train"]["max_epochs"] == 30
    config = resolved("tiny", train={"batch_size": {"bpr": "64"}}, figures={"dpi": "100"})
    assert config["train"]["batch_size"]["bpr"] == 64 and config["figures"]["dpi"] == 100
    with pytest.raises(ConfigError, match=r"train\.dim.*out of range.*minimum 1"):
        resolved("tiny", train={"dim": "-4"})


def test_presets_override_single_experiments():
    tiny = resolved("tiny")
    assert tiny["experiments"]["fig10"]["variants"] == ["paper", "released"]
    assert all(e["datasets"] == ["Synthetic"] for e in tiny["experiments"].values())
    gowalla = resolved("gowalla-cpu")
    assert set(gowalla["experiments"]) == {"table1_wd", "table1_prism", "fig1", "fig6"}


def test_unknown_variant_in_an_experiment_names_the_key():
    raw = raw_config()
    raw["experiments"]["fig1"]["variants"] = ["paper", "relased"]
    with pytest.raises(ConfigError, match=r"experiments\.fig1\.variants.*'relased'"):
        resolve_config(raw, SCHEMA, {})
    raw = raw_config()
    raw["variants"]["released"]["negative_pool"] = "some"
    with pytest.raises(ConfigError, match=r"variants\.released\.negative_pool"):
        resolve_config(raw, SCHEMA, {})
