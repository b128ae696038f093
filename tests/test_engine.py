"""The training engine: determinism, kill-and-resume, divergence, every method learns."""

import math

import numpy as np
import pytest
import torch

from prism_repro.data.split import SplitData, split_in_memory
from prism_repro.data.synthetic import generate
from prism_repro.evaluate import evaluate_model
from prism_repro.runspec import RunSpec
from prism_repro.train import EngineConfig, Trainer


@pytest.fixture(scope="module")
def data() -> SplitData:
    # the tiny preset's synthetic dataset
    baskets = generate(
        users=300, items=400, interactions_per_user=30, zipf_exponent=1.1, latent_dim=8, seed=7
    )
    pairs = np.array([(u, i) for u, b in enumerate(baskets) for i in b], dtype=np.int64)
    return split_in_memory(pairs, 300, 400, seed=1)


CFG = EngineConfig(
    dim=16, max_epochs=6, patience=100, batch_size=512, device="cpu", checkpoint_every=2
)


def fit(data, run, cfg=CFG, work_dir=None, stop_after=None):
    trainer = Trainer(RunSpec.parse(run), data, cfg, "Synthetic", work_dir)
    state = trainer.fit(stop_after=stop_after)
    return trainer, state


def test_same_seed_gives_identical_results(data):
    _, a = fit(data, "mf_directau-g1_full1e-06_xavier_lr0.01_s5")
    _, b = fit(data, "mf_directau-g1_full1e-06_xavier_lr0.01_s5")
    assert [r["val_ndcg"] for r in a.rows] == [r["val_ndcg"] for r in b.rows]
    assert [r["loss"] for r in a.rows] == [r["loss"] for r in b.rows]
    _, c = fit(data, "mf_directau-g1_full1e-06_xavier_lr0.01_s6")
    assert [r["loss"] for r in a.rows] != [r["loss"] for r in c.rows]


@pytest.mark.parametrize(
    "run",
    [
        "mf_bpr_full1e-06_xavier_lr0.01_s5",
        "mf_mawu_none_prism1_lr0.01_s5",
        "lightgcn_ssm_batched1e-06_xavier_lr0.01_s5",
    ],
)
def test_killed_and_resumed_run_equals_uninterrupted(data, tmp_path, run):
    _, whole = fit(data, run)
    first, _ = fit(
        data, run, work_dir=tmp_path, stop_after=4
    )  # "killed" after the epoch-4 checkpoint
    assert (tmp_path / "checkpoint.pt").exists()
    del first
    resumed, state = fit(data, run, work_dir=tmp_path)
    assert [r["val_ndcg"] for r in state.rows] == [r["val_ndcg"] for r in whole.rows]
    assert [r["loss"] for r in state.rows] == [r["loss"] for r in whole.rows]
    assert state.best_epoch == whole.best_epoch


def test_loss_that_turns_nan_is_reported_as_diverged(data, monkeypatch):
    trainer = Trainer(RunSpec.parse("mf_bpr_none_xavier_lr0.01_s1"), data, CFG, "Synthetic")
    real = trainer._batch_loss
    calls = {"n": 0}
    per_epoch = math.ceil(len(data.train) / CFG.batch_size)

    def flaky(idx):
        calls["n"] += 1
        loss = real(idx)
        return loss * float("nan") if calls["n"] > per_epoch + 1 else loss  # in epoch 2

    monkeypatch.setattr(trainer, "_batch_loss", flaky)
    state = trainer.fit()
    assert state.stop_reason == "diverged" and state.diverged_epoch == 2
    assert math.isnan(state.rows[-1]["loss"])


def test_early_stopping_keeps_the_best_epoch(data):
    cfg = EngineConfig(dim=16, max_epochs=200, patience=3, batch_size=512, device="cpu")
    trainer, state = fit(data, "mf_bpr_none_xavier_lr0.05_s2", cfg)
    assert state.stop_reason == "early_stopping"
    assert state.epoch == state.best_epoch + 3
    assert state.best_ndcg == max(r["val_ndcg"] for r in state.rows)


@pytest.mark.parametrize("backbone", ["mf", "nlmf", "lightgcn"])
@pytest.mark.parametrize("loss", ["bpr", "ssm", "directau-g1", "mawu"])
@pytest.mark.parametrize("decay", ["full1e-06", "batched1e-06", "none"])
def test_every_backbone_loss_and_decay_beats_random_ranking(
    data, random_baseline, backbone, loss, decay
):
    run = f"{backbone}_{loss}_{decay}_xavier_lr0.01_s7"
    # the MLP towers of non-linear MF learn angles more slowly under DirectAU and MAWU
    cfg = EngineConfig(
        dim=16,
        max_epochs=20 if backbone == "nlmf" else 8,
        patience=100,
        batch_size=512,
        device="cpu",
    )
    trainer, state = fit(data, run, cfg)
    trainer.model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.best_state.items() if k.startswith("model.")}
    )
    metrics, _, _ = evaluate_model(trainer.model, data, k=20, device=torch.device("cpu"))
    mean, std = random_baseline
    # better than random by more than three standard deviations of random rankings' NDCG
    assert metrics["test_ndcg"] > mean + 3 * std, (run, metrics["test_ndcg"], mean, std)


@pytest.fixture(scope="module")
def random_baseline(data):
    return random_ranking_ndcg(data)


def random_ranking_ndcg(data, draws=30):
    """Test NDCG@20 of rankings by random scores: mean and std over draws."""
    from prism_repro.ranking import UserItemSets, evaluate_ranking

    g = torch.Generator().manual_seed(0)
    sets = [UserItemSets(part, data.num_users, "cpu") for part in (data.train, data.val, data.test)]
    stratum = torch.from_numpy(data.item_stratum.astype(np.int64))
    values = [
        evaluate_ranking(
            torch.randn(data.num_users, 8, generator=g),
            torch.randn(data.num_items, 8, generator=g),
            sets[2],
            sets[:2],
            stratum,
            20,
            strata=False,
        )["ndcg"]
        for _ in range(draws)
    ]
    return float(np.mean(values)), float(np.std(values))


@pytest.mark.parametrize(
    "run",
    [
        "mf_bpr_full1e-06_xavier_lr0.01_s5",
        "lightgcn_ssm_none_xavier_lr0.01_s5",
        "mf_ssm_none_xavier_lr0.01_s5",
        "mf_directau-g1_none_xavier_lr0.01_s5",
    ],
)
@pytest.mark.parametrize("sampling", ["batch", "all"])
def test_direct_gather_equals_encoding_distinct_ids(data, run, sampling):
    """Skipping the dedup where no distinct rows are needed changes float order, not the loss;
    for SSM the distinct path is the indexed-negatives fast path, the direct one the (B, k, d)
    block."""
    cfg = EngineConfig(
        dim=16,
        batch_size=64,
        device="cpu",
        negative_sampling=sampling,
        uniformity_rows="interactions",
    )
    results = []
    for distinct in (True, False):
        trainer = Trainer(RunSpec.parse(run), data, cfg, "Synthetic")
        trainer.encode_distinct = distinct
        loss = trainer._batch_loss(torch.arange(64))
        loss.backward()
        results.append(
            (loss.detach(), trainer.model.user_emb.weight.grad, trainer.model.item_emb.weight.grad)
        )
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert results[0][1].abs().sum() > 0


@pytest.mark.parametrize(
    "run, distinct",
    [
        ("mf_bpr_full1e-06_xavier_lr0.01_s5", False),
        # SSM normalises each distinct item once and indexes its negatives into those rows
        ("lightgcn_ssm_none_xavier_lr0.01_s5", True),
        ("mf_ssm_none_xavier_lr0.01_s5", True),
        ("mf_bpr_batched1e-06_xavier_lr0.01_s5", True),  # batch-row decay acts on distinct rows
        (
            "mf_directau-g1_none_xavier_lr0.01_s5",
            True,
        ),  # uniformity over distinct rows (released default)
        ("nlmf_bpr_full1e-06_xavier_lr0.01_s5", True),  # the towers cost per encoded row
    ],
)
def test_dedup_only_where_distinct_rows_are_needed(data, run, distinct):
    assert Trainer(RunSpec.parse(run), data, CFG, "Synthetic").encode_distinct is distinct
