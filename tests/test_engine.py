"""The training engine: determinism, kill-and-resume, divergence, every method learns."""

import logging
import math

import numpy as np
import pandas as pd
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


def test_same_seed_gives_identical_results(data, default_threads):
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
def test_killed_and_resumed_run_equals_uninterrupted(
    data, tmp_path, run, monkeypatch, caplog, default_threads
):
    _, whole = fit(data, run)
    fit(data, run, work_dir=tmp_path, stop_after=4)  # "killed" after the epoch-4 checkpoint
    assert (tmp_path / "checkpoint.pt").exists()
    # as a kill in the middle of writing the next checkpoint would leave it
    stale = tmp_path / ".checkpoint.pt.x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    # training is deterministic, so a restart from scratch would give the same rows: count the
    # epochs the second process trains, which a resume from epoch 4 of 6 keeps to two
    trained = []
    train_epoch = Trainer.train_epoch

    def counted(self):
        trained.append(self.state.epoch + 1)
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", counted)
    with caplog.at_level(logging.INFO, logger="prism_repro.train"):
        _, state = fit(data, run, work_dir=tmp_path)
    assert trained == [5, 6]
    assert not stale.exists()
    assert f"resumed from {tmp_path / 'checkpoint.pt'} at epoch 4" in caplog.messages
    assert [r["val_ndcg"] for r in state.rows] == [r["val_ndcg"] for r in whole.rows]
    assert [r["loss"] for r in state.rows] == [r["loss"] for r in whole.rows]
    assert state.best_epoch == whole.best_epoch
    for key, value in whole.best_state.items():
        assert torch.equal(state.best_state[key], value), key


def test_a_checkpoint_of_another_run_is_refused(data, tmp_path):
    fit(data, "mf_bpr_full1e-06_xavier_lr0.01_s5", work_dir=tmp_path, stop_after=2)
    with pytest.raises(RuntimeError, match="belongs to run mf_bpr_full1e-06_xavier_lr0.01_s5"):
        fit(data, "mf_bpr_full1e-06_xavier_lr0.01_s6", work_dir=tmp_path)


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
    trainer, state = fit(data, "mf_bpr_none_xavier_lr0.1_s2", cfg)
    assert state.stop_reason == "early_stopping"
    assert state.epoch == state.best_epoch + 3
    assert state.best_ndcg == max(r["val_ndcg"] for r in state.rows)


BACKBONES = ["mf", "nlmf", "lightgcn"]
LOSS_IDS = ["bpr", "ssm", "directau-g1", "mawu"]
DECAYS = ["full1e-06", "batched1e-06", "none"]
# every backbone x loss, with the decay mode rotating so that every (backbone, decay) and every
# (loss, decay) pair occurs too: 12 runs cover all pairs of the 36-run product
PAIRWISE = [
    (backbone, loss, DECAYS[(b + n) % len(DECAYS)])
    for b, backbone in enumerate(BACKBONES)
    for n, loss in enumerate(LOSS_IDS)
]


def test_the_pairwise_grid_covers_every_pair():
    for i, j in ((0, 1), (0, 2), (1, 2)):
        axes = (BACKBONES, LOSS_IDS, DECAYS)
        assert {(c[i], c[j]) for c in PAIRWISE} == {(a, b) for a in axes[i] for b in axes[j]}


@pytest.mark.parametrize("backbone, loss, decay", PAIRWISE)
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


@pytest.mark.parametrize(
    "run, variant",
    [
        ("mf_resn-w0.0001_full1e-06_xavier_lr0.01_s7", {}),
        ("mf_resn-w0.0001_full1e-06_xavier_lr0.01_s7", {"resn_form": "official"}),
        ("mf_auresn-g1-w0.0001_none_xavier_lr0.01_s7", {}),
        ("mf_ipl-w0.1_full1e-06_xavier_lr0.01_s7", {}),
        ("mf_ipl-w0.1_full1e-06_xavier_lr0.01_s7", {"ipl_form": "epoch"}),
        ("mf_macr_full1e-06_xavier_lr0.01_s7", {}),
        ("mf_macr_full1e-06_xavier_lr0.01_s7", {"macr_c": "fixed"}),
        ("lightgcn_macr_none_xavier_lr0.01_s7", {}),
    ],
)
def test_every_debiasing_baseline_beats_random_ranking(data, random_baseline, run, variant):
    cfg = EngineConfig(dim=16, max_epochs=8, patience=100, batch_size=512, device="cpu", **variant)
    trainer, state = fit(data, run, cfg)
    trainer.model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.best_state.items() if k.startswith("model.")}
    )
    metrics, _, _ = evaluate_model(trainer.model, data, k=20, device=torch.device("cpu"))
    mean, std = random_baseline
    assert metrics["test_ndcg"] > mean + 3 * std, (run, variant, metrics["test_ndcg"], mean, std)
    if "macr" in run:  # validation chose c, and the model keeps it (in its state)
        grid = [o["c"] for o in trainer.model.inference_options()]
        assert float(state.best_state["model.c"]) in grid
        assert len(grid) == (1 if variant else 13)


def test_a_saved_macr_model_reloads_with_its_c(data, tmp_path):
    from prism_repro.evaluate import load_model

    cfg = EngineConfig(dim=16, max_epochs=2, patience=100, batch_size=512, device="cpu")
    trainer, state = fit(data, "mf_macr_none_xavier_lr0.01_s3", cfg)
    summary = {"run": trainer.spec.run_id, "engine": {**cfg.__dict__}}
    torch.save({"state": state.best_state, "summary": summary}, tmp_path / "model.pt")
    model, _ = load_model(tmp_path / "model.pt", data, torch.device("cpu"))
    trainer.model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.best_state.items() if k.startswith("model.")}
    )
    with torch.no_grad():
        for a, b in zip(model.ranking_outputs(), trainer.model.ranking_outputs()):
            torch.testing.assert_close(a, b)
    assert float(model.c) == float(state.best_state["model.c"])


def test_macr_validation_from_one_product_equals_one_pass_per_c(data):
    """The trainer's shared-product validation of every c gives the NDCG and the choice of c
    that scoring each c's counterfactual rows on its own gives (every other model's path)."""
    cfg = EngineConfig(dim=16, max_epochs=3, patience=100, batch_size=512, device="cpu")
    shared, _ = fit(data, "mf_macr_full1e-06_xavier_lr0.01_s7", cfg)
    looped = Trainer(RunSpec.parse("mf_macr_full1e-06_xavier_lr0.01_s7"), data, cfg, "Synthetic")
    looped.model.load_state_dict(shared.model.state_dict())
    looped.model.ranking_offsets = lambda: None
    results = []
    for grid in ((0.0, 5.0, 30.0), (30.0,), (5.0,)):  # the default's choice, then each c alone
        shared.model.c_grid = looped.model.c_grid = grid
        results.append(shared.validate())
        assert results[-1] == looped.validate(), grid
        assert float(shared.model.c) == float(looped.model.c)
    assert results[1] != results[2]  # c changes the ranking here


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
        negative_pool=sampling,
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


def test_the_evaluated_model_is_the_best_epochs_not_the_last(data, tmp_path):
    """The train command stops early and evaluates the state of its best validation epoch."""
    from prism_repro.cli import main
    from prism_repro.data.interactions import finalize_interactions, write_interactions

    pairs = np.concatenate([data.train, data.val, data.test])
    frame, meta = finalize_interactions(pairs[:, 0], pairs[:, 1])
    write_interactions(frame, meta, tmp_path / "interactions.parquet")
    files = {name: tmp_path / f"{name}.parquet" for name in ("split", "degrees", "metrics")}
    assert main(["split", "--in", str(tmp_path / "interactions.parquet"), "--out",
                 str(files["split"]), "--seed", "1"]) == 0  # fmt: skip
    assert main(["degrees", "--in", str(files["split"]), "--out", str(files["degrees"])]) == 0
    run = "mf_bpr_none_xavier_lr0.1_s2"
    args = ["train", "--run", run, "--dataset", "Synthetic", "--split", str(files["split"])]
    args += ["--degrees", str(files["degrees"]), "--out-model", str(tmp_path / "model.pt")]
    args += ["--out-epochs", str(tmp_path / "epochs.parquet"), "--out-metrics"]
    args += [str(files["metrics"]), "--out-norms", str(tmp_path / "norms.parquet")]
    args += ["--dim", "16", "--max-epochs", "200", "--patience", "3", "--device", "cpu"]
    assert main(args) == 0
    metrics = pd.read_parquet(files["metrics"]).iloc[0]
    epochs = pd.read_parquet(tmp_path / "epochs.parquet").set_index("epoch")["val_ndcg"]
    assert metrics["stop_reason"] == "early_stopping"
    assert metrics["epochs_run"] == metrics["best_epoch"] + 3 == epochs.index.max()
    best, last = epochs[metrics["best_epoch"]], epochs.iloc[-1]
    assert best == epochs.max() == metrics["best_val_ndcg"] and last < best - 1e-4
    # the evaluated model scores the best epoch's validation NDCG, not the last epoch's
    assert metrics["val_ndcg"] == pytest.approx(best, rel=1e-6)
    assert not (tmp_path / "work").exists()  # the checkpoint is gone once the run is done
