"""The training engine: on-device batches, Adam, early stopping, checkpoint and resume.

The train split lives on the device; an epoch is a seeded permutation sliced into batches, with
negatives drawn on the device. Validation NDCG@k (dot product; cosine too where a figure needs
it) after every epoch drives early stopping; the best state is copied only when it improves.
An atomic checkpoint every few epochs lets a killed run resume with identical results on CPU.
A run whose loss turns NaN or inf stops and is reported as diverged: a result, not a crash.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prism_repro.data.split import SplitData, load_split
from prism_repro.decay import BATCH_ROW_DECAY, batch_decay_penalty, optimizer_weight_decay
from prism_repro.devices import NO_SLOT, acquire_for, positive_int
from prism_repro.evaluate import write_run_results
from prism_repro.initialization import prism_init_
from prism_repro.io import atomic_path, stale_temporaries, write_parquet
from prism_repro.losses import (
    LOSSES,
    LossBatch,
    MawuMargins,
    compute_loss,
    positives,
    wrap_for_loss,
)
from prism_repro.models import build_encoder
from prism_repro.optim import FusedAdam, has_fused_adam
from prism_repro.provenance import provenance
from prism_repro.ranking import UserItemSets, evaluate_offset_rankings, evaluate_rankings
from prism_repro.registry import resolve
from prism_repro.runspec import RunSpec
from prism_repro.sampling import sample_negatives, unique_ids

log = logging.getLogger("prism_repro.train")


@dataclass(frozen=True)
class EngineConfig:
    """Settings shared by all runs (the run's own settings are its RunSpec). The one place of
    the engine's defaults: the command's flags follow from it, and a test checks that the
    config schema's ``train`` defaults and the ``paper`` variant's engine keys equal these."""

    dim: int = 64
    max_epochs: int = 1000
    patience: int = 10
    batch_size: int | None = None  # None: the loss's batch size in the registry
    k: int = 20
    device: str = "auto"
    cosine_validation: bool = False
    checkpoint_every: int = 5
    # variant keys (prism_repro.variants; the `paper` variant's values)
    negative_pool: str = "all"  # all (paper) | batch (released code)
    ssm_negatives: int = 10  # paper 10 | released 20
    nlmf_relu: bool = True  # paper: ReLU; released code: none
    uniformity_rows: str = "unique"  # unique (released PRISM code) | interactions (official)
    mawu_clamp: str = "before_backward"  # released code's point | after_step
    mawu_margin: str = "pair"  # paper | broadcast (released code)
    decay_params: str = "embeddings"  # paper | all (released code: every parameter)
    lightgcn_test_graph: str = "train_val"  # released code | train
    batch_order: str = "shuffled"  # paper | fixed (released code)
    resn_form: str = "released"  # ReSN: released PRISM code | official (LIN452/ReSN)
    ipl_form: str = "batch"  # IPL: released PRISM code (batch) | epoch (official UnitDan/IPL)
    macr_c: str = "sweep"  # MACR's c: chosen on validation (official) | fixed (released c = 1)
    ssm_temperature: float = 0.2


ENGINE_VARIANT_KEYS = (
    "negative_pool",
    "ssm_negatives",
    "nlmf_relu",
    "uniformity_rows",
    "mawu_clamp",
    "mawu_margin",
    "decay_params",
    "lightgcn_test_graph",
    "batch_order",
    "resn_form",
    "ipl_form",
    "macr_c",
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is visible")
    return torch.device(name)


def loss_hparams(spec: RunSpec, cfg: EngineConfig, dataset: str) -> dict:
    """The loss's hyper-parameters: registry defaults, then dataset-specific published values
    (MAWU's gammas) for grid parameters the run leaves unset, then the run's own."""
    entry = LOSSES[spec.loss]
    out = {}
    if entry.defaults_for:
        out.update(resolve(entry.defaults_for)(dataset, spec.backbone))
    out.update(dict(spec.params))
    # hyper-parameters that are variant keys (the forms of the debiasing baselines)
    out.update({name: getattr(cfg, key) for name, key in entry.engine_params.items()})
    if "temperature" in entry.defaults:
        out["temperature"] = cfg.ssm_temperature
    if spec.loss == "mawu" and cfg.mawu_margin == "broadcast":
        out["margin_broadcast"] = True
    return out


def optimizer_groups(model, margins, weight_decay: float, scope: str) -> list[dict]:
    """Adam's parameter groups: full-table decay on the embedding tables only (the paper's
    (lambda/2)(sum ||u||^2 + sum ||i||^2)) or on every parameter (the released code)."""
    tables = [model.user_emb.weight, model.item_emb.weight]
    others = [p for p in model.parameters() if all(p is not t for t in tables)]
    others += list(margins.parameters()) if margins is not None else []
    if scope == "all":
        return [{"params": tables + others, "weight_decay": weight_decay}]
    groups = [{"params": tables, "weight_decay": weight_decay}]
    return groups + ([{"params": others, "weight_decay": 0.0}] if others else [])


def make_adam(params, lr: float, weight_decay: float, device: torch.device):
    """Adam with the fused kernel where PyTorch has one (CPU, CUDA): the same update rule, in
    one pass over each table instead of about eight (MF + BPR on Gowalla: 9 ms -> 2 ms a step,
    most of an epoch), called without torch.optim's wrappers (prism_repro.optim). Coupled L2
    ``weight_decay`` as in ``torch.optim.Adam``."""
    if has_fused_adam(device):
        return FusedAdam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@dataclass
class RunState:
    """Everything that must survive a restart."""

    epoch: int = 0
    best_ndcg: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict | None = None
    rows: list = field(default_factory=list)
    diverged_epoch: int | None = None
    stop_reason: str = "max_epochs"


class Trainer:
    def __init__(
        self,
        spec: RunSpec,
        data: SplitData,
        cfg: EngineConfig,
        dataset: str,
        work_dir: Path | None = None,
    ):
        self.spec, self.data, self.cfg, self.dataset = spec, data, cfg, dataset
        self.work_dir = Path(work_dir) if work_dir else None
        self.device = resolve_device(cfg.device)
        self.loss_spec = LOSSES[spec.loss]
        self.hparams = loss_hparams(spec, cfg, dataset)
        # every input the loss reads: the batch is prepared from this alone
        self.needs = set(self.loss_spec.needs(self.hparams))
        self.batch_size = cfg.batch_size or self.loss_spec.batch_size
        self.num_negatives = self.loss_spec.negatives
        if spec.loss == "ssm":  # a variant key: the paper's 10 or the released script's 20
            self.num_negatives = cfg.ssm_negatives

        init_gen = torch.Generator().manual_seed(spec.seed)  # on CPU: same weights on any device
        train_edges = torch.from_numpy(data.train.T.copy())
        self.model = build_encoder(
            spec.backbone,
            data.num_users,
            data.num_items,
            cfg.dim,
            train_edges=train_edges,
            relu=cfg.nlmf_relu,
            generator=init_gen,
        )
        if spec.init == "prism":
            prism_init_(
                self.model.user_emb.weight, torch.from_numpy(data.user_degree), spec.alpha, init_gen
            )
            prism_init_(
                self.model.item_emb.weight, torch.from_numpy(data.item_degree), spec.alpha, init_gen
            )
        # a loss that trains a model around the encoder (MACR's branches) wraps it here
        self.model = wrap_for_loss(spec.loss, self.model, init_gen, cfg)
        self.margins = (
            MawuMargins(data.num_users, data.num_items, generator=init_gen)
            if self.loss_spec.needs_margins
            else None
        )
        self.model.to(self.device)
        if self.margins is not None:
            self.margins.to(self.device)
        wd = optimizer_weight_decay(spec.decay, spec.weight_decay)
        groups = optimizer_groups(self.model, self.margins, wd, cfg.decay_params)
        self.optimizer = make_adam(groups, spec.lr, wd, self.device)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(spec.seed + 1)

        self.train_users = torch.from_numpy(data.train[:, 0]).to(self.device)
        self.train_items = torch.from_numpy(data.train[:, 1]).to(self.device)
        self.train_sets = UserItemSets(data.train, data.num_users, self.device)
        self.val_sets = UserItemSets(data.val, data.num_users, self.device)
        self.item_stratum = torch.from_numpy(data.item_stratum.astype(np.int64)).to(self.device)
        self.item_degree = (
            torch.from_numpy(data.item_degree).to(self.device, torch.float32)
            if "item_degree" in self.needs
            else None
        )
        self.state = RunState()
        needs_distinct_rows = (
            ("uniformity_rows" in self.needs and cfg.uniformity_rows == "unique")
            or "unique_rows" in self.needs
            or spec.decay == BATCH_ROW_DECAY
        )
        # SSM-like losses normalise each distinct item once and index their items into it (not
        # where a loss reads per-interaction item rows: MACR's branches); their users need no
        # dedup where the encoder only gathers rows
        self.indexed_negatives = (
            self.loss_spec.indexed_negatives
            and self.num_negatives > 0
            and "branch_logits" not in self.needs
        )
        self.distinct_users = needs_distinct_rows or not self.model.gathers_rows
        self.encode_distinct = self.distinct_users or self.indexed_negatives

    # -- stage timing: off unless a benchmark sets ``stage_seconds`` to a dict -----------------
    stage_seconds: dict[str, float] | None = None
    _tick_at: float = 0.0

    def _tick(self, stage: str | None) -> None:
        """Charge the time since the last tick to ``stage`` (None: only restart the clock).
        Synchronises a GPU when timing, so time lands where the work is."""
        if self.stage_seconds is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        if stage is not None:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + now - self._tick_at
        self._tick_at = now

    # -- one epoch --------------------------------------------------------------------------
    def _batch_loss(self, idx: torch.Tensor) -> torch.Tensor:
        users, items = self.train_users[idx], self.train_items[idx]
        size = len(idx)
        neg = None
        batch_items = items
        if self.num_negatives:
            neg = sample_negatives(
                items,
                self.data.num_items,
                self.num_negatives,
                self.sample_gen,
                self.cfg.negative_pool,
            )
            batch_items = torch.cat([items, neg.flatten()])
        self._tick("sampling")
        if self.encode_distinct:
            # the loss or the decay needs the batch's distinct rows (or the encoder costs per row):
            # encode each distinct id once, then spread the rows over the interactions
            uniq_users, inv_users = (
                unique_ids(users, self.data.num_users) if self.distinct_users else (users, None)
            )
            uniq_items, inv_items = unique_ids(batch_items, self.data.num_items)
            user_out, item_out = self.model.encode(uniq_users, uniq_items)
            # index_select rather than x[idx]: a deterministic backward on CPU (same seed, same bits)
            user_rows = user_out if inv_users is None else user_out.index_select(0, inv_users)
            indexed = neg is not None and self.indexed_negatives
            item_rows = None if indexed else item_out.index_select(0, inv_items)
        else:  # a plain row gather: one gather per table, one scatter in its backward
            indexed = False
            user_rows, item_rows = self.model.encode(users, batch_items)
            # no distinct rows here: the decay term is zero and any uniformity is per interaction
            user_out, item_out = user_rows, item_rows
        self._tick("encode")
        if indexed:  # positives and negatives as ids into the distinct rows
            batch = LossBatch(
                user=user_rows,
                pos=None,
                item_rows=item_out,
                pos_index=inv_items[:size],
                neg_index=inv_items[size:].view(size, -1),
            )
        else:
            batch = LossBatch(user=user_rows, pos=item_rows[:size])
            if neg is not None:
                batch.neg = item_rows[size:].view(size, self.num_negatives, -1)
        if self.loss_spec.needs_uniformity_rows:
            per_interaction = self.cfg.uniformity_rows == "interactions"
            batch.users_unif = batch.user if per_interaction else user_out
            batch.items_unif = positives(batch) if per_interaction else item_out
        if self.margins is not None:
            batch.user_margin, batch.item_margin = self.margins(users, items)
        self._fill_extra_inputs(batch, items, user_rows, item_rows, user_out, item_out)
        loss = compute_loss(self.spec.loss, batch, **self.hparams)
        loss = loss + batch_decay_penalty(
            self.spec.decay, self.spec.weight_decay, user_out, item_out
        )
        self._tick("loss")
        return loss

    def _fill_extra_inputs(self, batch, items, user_rows, item_rows, user_out, item_out) -> None:
        """The inputs of ``losses.INPUT_FIELDS`` beyond rows, negatives, uniformity and margins.

        ``user_out`` / ``item_out`` are the batch's distinct rows whenever "unique_rows" is needed
        (it turns ``encode_distinct`` on).
        """
        needs, size = self.needs, len(items)
        if "unique_rows" in needs:
            batch.users_unique, batch.items_unique = user_out, item_out
        if "pos_items" in needs:
            batch.pos_items = items
        if "item_degree" in needs:
            batch.item_degree = self.item_degree
        if "all_items" in needs or "train_pairs" in needs:
            all_users, all_items = self.model()
            batch.all_items = all_items
            if "train_pairs" in needs:
                batch.train_items = self.train_items
                batch.train_scores = (
                    all_users.index_select(0, self.train_users)
                    * all_items.index_select(0, self.train_items)
                ).sum(-1)
        if "branch_logits" in needs:
            user_logit, item_logit = self.model.branch_logits(user_rows, item_rows)
            batch.user_logit, batch.pos_logit = user_logit, item_logit[:size]
            if batch.neg is not None:
                batch.neg_logit = item_logit[size:].view(size, -1)

    def epoch_order(self, n: int) -> torch.Tensor:
        """This epoch's order of the training interactions: a fresh seeded permutation
        (``shuffled``), or the same one every epoch (``fixed``, as the released loader's
        ``shuffle=False`` gives the same batches every epoch; seeded, not file order)."""
        if self.cfg.batch_order == "fixed":
            gen = torch.Generator(device=self.device).manual_seed(self.spec.seed + 2)
            return torch.randperm(n, generator=gen, device=self.device)
        return torch.randperm(n, generator=self.sample_gen, device=self.device)

    def train_epoch(self) -> float:
        self.model.train()
        n = len(self.train_users)
        self._tick(None)
        perm = self.epoch_order(n)
        total, batches = 0.0, 0
        show = sys.stderr.isatty()
        size = self.batch_size
        num_batches = math.ceil(n / size)
        clamp_before = self.margins is not None and self.cfg.mawu_clamp == "before_backward"
        for b, start in enumerate(range(0, n, size)):
            loss = self._batch_loss(perm[start : start + size])
            value = float(loss.detach())
            if not math.isfinite(value):
                return value
            if clamp_before:  # the released loop: margins clamped between forward and backward
                self.margins.clamp_()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._tick("backward")
            self.optimizer.step()
            if self.margins is not None and not clamp_before:
                self.margins.clamp_()
            self._tick("optimizer")
            total += value
            batches += 1
            if show:
                print(
                    f"\r  epoch {self.state.epoch + 1} batch {b + 1}/{num_batches} loss {value:.4f}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        if show:
            print("\r", end="", file=sys.stderr)
        return total / max(batches, 1)

    def validate(self) -> dict:
        """Validation NDCG@k of the model's ranking; a model with inference-time settings (MACR's
        c) is scored with each and left at the best, which its state then records."""
        self.model.eval()
        scores = ("dot", "cosine") if self.cfg.cosine_validation else ("dot",)
        options = self.model.inference_options()
        sets = (self.val_sets, [self.train_sets], self.item_stratum, self.cfg.k)
        with torch.no_grad():
            family = None if "cosine" in scores else self.model.ranking_offsets()
            if family is not None:
                ranked = evaluate_offset_rankings(*family, *sets, strata=False)
                results = [{"dot": result} for result in ranked]
            else:
                results = []
                for setting in options:
                    self.model.set_inference(**setting)
                    user_out, item_out = self.model.ranking_outputs()
                    results.append(
                        evaluate_rankings(user_out, item_out, *sets, scores, strata=False)
                    )
            best_at = max(range(len(options)), key=lambda j: (results[j]["dot"]["ndcg"], -j))
            best = results[best_at]
            self.model.set_inference(**options[best_at])
        out = {"val_ndcg": best["dot"]["ndcg"]}
        if "cosine" in best:
            out["val_ndcg_cosine"] = best["cosine"]["ndcg"]
        return out

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.work_dir / "checkpoint.pt" if self.work_dir else None

    def save_checkpoint(self) -> None:
        if not self.checkpoint_path:
            return
        payload = {
            "spec": self.spec.run_id,
            "model": self.model.state_dict(),
            "margins": self.margins.state_dict() if self.margins is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
            "state": {k: v for k, v in asdict(self.state).items() if k != "best_state"},
            "best_state": self.state.best_state,
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(payload, tmp)

    def load_checkpoint(self) -> bool:
        path = self.checkpoint_path
        if not path:
            return False
        # a process killed while writing a checkpoint leaves its temporary file (tens of MB on
        # Gowalla) beside the last complete one; nothing else would ever remove it
        for stale in stale_temporaries(path):
            stale.unlink(missing_ok=True)
            log.info("removed %s, left by a run killed while writing its checkpoint", stale)
        if not path.exists():
            return False
        payload = torch.load(path, map_location=self.device, weights_only=True)
        if payload["spec"] != self.spec.run_id:
            raise RuntimeError(f"{path} belongs to run {payload['spec']}, not {self.spec.run_id}")
        self.model.load_state_dict(payload["model"])
        if self.margins is not None:
            self.margins.load_state_dict(payload["margins"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.sample_gen.set_state(
            payload["sample_gen"].cpu() if self.device.type == "cpu" else payload["sample_gen"]
        )
        self.state = RunState(**payload["state"], best_state=payload["best_state"])
        log.info("resumed from %s at epoch %d", path, self.state.epoch)
        return True

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> RunState:
        """Train until early stopping, max epochs or divergence (``stop_after``: for tests)."""
        self.load_checkpoint()
        st = self.state
        while (
            st.epoch < self.cfg.max_epochs
            and st.bad_epochs < self.cfg.patience
            and st.diverged_epoch is None
        ):
            if stop_after is not None and st.epoch >= stop_after:
                return st
            t0 = time.perf_counter()
            loss = self.train_epoch()
            st.epoch += 1
            if not math.isfinite(loss):
                st.diverged_epoch, st.stop_reason = st.epoch, "diverged"
                st.rows.append(
                    {
                        "epoch": st.epoch,
                        "loss": loss,
                        "val_ndcg": float("nan"),
                        "val_ndcg_cosine": float("nan"),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                log.warning("epoch %d: loss is %s, stopping (diverged)", st.epoch, loss)
                break
            train_seconds = time.perf_counter() - t0
            metrics = self.validate()
            row = {
                "epoch": st.epoch,
                "loss": loss,
                "val_ndcg": metrics["val_ndcg"],
                "val_ndcg_cosine": metrics.get("val_ndcg_cosine", float("nan")),
                "seconds": time.perf_counter() - t0,
            }
            st.rows.append(row)
            if metrics["val_ndcg"] > st.best_ndcg:
                st.best_ndcg, st.best_epoch, st.bad_epochs = metrics["val_ndcg"], st.epoch, 0
                st.best_state = {k: v.detach().clone() for k, v in self._full_state().items()}
            else:
                st.bad_epochs += 1
            log.info(
                "epoch %d loss %.5f val_ndcg@%d %.5f%s train %.2fs total %.2fs",
                st.epoch,
                loss,
                self.cfg.k,
                metrics["val_ndcg"],
                f" cosine {metrics['val_ndcg_cosine']:.5f}" if "val_ndcg_cosine" in metrics else "",
                train_seconds,
                row["seconds"],
            )
            if st.epoch % self.cfg.checkpoint_every == 0:
                self.save_checkpoint()
        if st.diverged_epoch is None:
            st.stop_reason = (
                "early_stopping" if st.bad_epochs >= self.cfg.patience else "max_epochs"
            )
        return st

    def _full_state(self) -> dict:
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.margins is not None:
            state.update({f"margins.{k}": v for k, v in self.margins.state_dict().items()})
        return state


def train_run(
    spec: RunSpec, data: SplitData, cfg: EngineConfig, dataset: str, work_dir: Path | None = None
) -> tuple[RunState, Trainer]:
    trainer = Trainer(spec, data, cfg, dataset, work_dir)
    return trainer.fit(), trainer


def _command(args: argparse.Namespace) -> None:
    spec = RunSpec.parse(args.run)
    cfg = engine_config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_split(args.split, args.degrees)
    work_dir = args.work_dir or args.out_model.parent / "work"
    t0 = time.perf_counter()
    # a GPU of its own (or a shared one, runs_per_gpu > 1): held until this process ends
    slot = acquire_for(
        cfg.device, args.runs_per_gpu, args.gpu_lock_dir, f"{args.dataset}/{spec.run_id}"
    )
    run_cfg = replace(cfg, device=slot.torch_device) if slot else cfg
    trainer = Trainer(spec, data, run_cfg, args.dataset, work_dir)
    log.info(
        "run %s on %s: %d users, %d items, %d train interactions, device %s",
        spec.run_id,
        args.dataset,
        data.num_users,
        data.num_items,
        len(data.train),
        trainer.device,
    )
    state = trainer.fit()
    wall = time.perf_counter() - t0
    best = state.best_state if state.best_state is not None else trainer._full_state()
    summary = {
        "dataset": args.dataset,
        "run": spec.run_id,
        **spec.as_dict(),
        "engine": asdict(cfg),
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
        "best_val_ndcg": state.best_ndcg if state.best_epoch else float("nan"),
        "stop_reason": state.stop_reason,
        "diverged": state.diverged_epoch is not None,
        "diverged_epoch": state.diverged_epoch,
        # epoch times summed over every process that worked on the run (a resumed run included)
        "train_seconds": float(sum(row["seconds"] for row in state.rows)),
        "process_seconds": wall,
        "device": str(trainer.device),
        **(slot.provenance() if slot else NO_SLOT),
        **provenance(),
    }
    epochs = pd.DataFrame(
        state.rows, columns=["epoch", "loss", "val_ndcg", "val_ndcg_cosine", "seconds"]
    )
    write_parquet(epochs.assign(run=spec.run_id, dataset=args.dataset), args.out_epochs)
    with atomic_path(args.out_model) as tmp:
        torch.save({"state": {k: v.cpu() for k, v in best.items()}, "summary": summary}, tmp)
    trainer.model.load_state_dict(
        {k.removeprefix("model."): v for k, v in best.items() if k.startswith("model.")}
    )
    metrics = write_run_results(
        trainer.model.eval(),
        summary,
        data,
        cfg.k,
        trainer.device,
        args.out_metrics,
        args.out_norms,
        test_graph=cfg.lightgcn_test_graph,
    )
    if trainer.checkpoint_path and trainer.checkpoint_path.exists():
        trainer.checkpoint_path.unlink()
        try:
            trainer.checkpoint_path.parent.rmdir()
        except OSError:
            pass
    log.info(
        "done: %s after %d epochs (best %d, val ndcg %.5f) in %.1fs; test ndcg %.5f",
        state.stop_reason,
        state.epoch,
        state.best_epoch,
        summary["best_val_ndcg"],
        wall,
        metrics["test_ndcg"],
    )


def _variant_value(key: str, text: str):
    field_type = type(getattr(EngineConfig(), key))
    if field_type is bool:
        if text.lower() not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"{key} takes true or false, got {text!r}")
        return text.lower() == "true"
    return field_type(text)


def _variant_pair(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or key not in ENGINE_VARIANT_KEYS:
        raise argparse.ArgumentTypeError(
            f"--variant takes key=value with key in {', '.join(ENGINE_VARIANT_KEYS)}; got {text!r}"
        )
    return key, _variant_value(key, value)


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The EngineConfig of parsed engine flags (defaults: EngineConfig's)."""
    plain = {f.name: getattr(args, f.name) for f in fields(EngineConfig) if hasattr(args, f.name)}
    return EngineConfig(**plain, **dict(args.variant or []))


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The engine's flags; every default is EngineConfig's."""
    d = EngineConfig()
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--max-epochs", type=int, default=d.max_epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: the loss's")
    p.add_argument("--k", type=int, default=d.k)
    p.add_argument("--device", default=d.device, choices=["auto", "cpu", "cuda"])
    p.add_argument("--ssm-temperature", type=float, default=d.ssm_temperature)
    p.add_argument(
        "--cosine-validation", action=argparse.BooleanOptionalAction, default=d.cosine_validation
    )
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument(
        "--variant",
        nargs="*",
        type=_variant_pair,
        default=[],
        metavar="KEY=VALUE",
        help="engine-level variant keys (prism_repro.variants), e.g. negative_pool=batch",
    )


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train and evaluate one run (resumes from its work folder's checkpoint)"
    )
    p.add_argument("--run", required=True, help="run id, e.g. mf_bpr_full1e-06_xavier_lr0.001_s123")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--degrees", type=Path, required=True)
    p.add_argument("--out-model", type=Path, required=True)
    p.add_argument("--out-epochs", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)
    p.add_argument("--out-norms", type=Path, required=True)
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="checkpoint folder (default: <out-model folder>/work)",
    )
    p.add_argument(
        "--runs-per-gpu",
        type=positive_int,
        default=1,
        help="runs that share one GPU at once (slots per device of the GPU slot pool)",
    )
    p.add_argument(
        "--gpu-lock-dir",
        type=Path,
        default=None,
        help="node-local folder of the GPU slot locks (default: $PRISM_GPU_LOCK_DIR or "
        "<tmp>/prism-repro-gpu-slots-<uid>)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (the rule passes Snakemake's threads; default: torch's choice). "
        "Several one-thread runs use a small machine better than threads that wait for each other",
    )
    add_engine_arguments(p)
    p.set_defaults(func=_command)
