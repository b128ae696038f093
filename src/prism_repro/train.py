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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prism_repro.data.split import SplitData, load_split
from prism_repro.decay import BATCH_ROW_DECAY, batch_decay_penalty, optimizer_weight_decay
from prism_repro.evaluate import write_run_results
from prism_repro.initialization import prism_init_
from prism_repro.io import atomic_path, write_parquet
from prism_repro.losses import (
    LOSSES,
    LossBatch,
    MawuMargins,
    compute_loss,
    mawu_gammas,
    positives,
)
from prism_repro.models import build_encoder
from prism_repro.provenance import provenance
from prism_repro.ranking import UserItemSets, evaluate_rankings
from prism_repro.runspec import RunSpec
from prism_repro.sampling import sample_negatives, unique_ids

log = logging.getLogger("prism_repro.train")


@dataclass(frozen=True)
class EngineConfig:
    """Settings shared by all runs (the run's own settings are its RunSpec)."""

    dim: int = 64
    max_epochs: int = 1000
    patience: int = 10
    batch_size: int = 4096
    k: int = 20
    device: str = "auto"
    negatives: int | None = None  # None: the loss's default (SSM 10, BPR 1)
    negative_sampling: str = "batch"  # batch (released code) | all
    uniformity_rows: str = (
        "unique"  # unique (released PRISM code) | interactions (official DirectAU/MAWU)
    )
    nlmf_relu: bool = True  # paper: ReLU; released code: none
    ssm_temperature: float = 0.2
    cosine_validation: bool = False
    checkpoint_every: int = 5


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is visible")
    return torch.device(name)


def loss_hparams(spec: RunSpec, cfg: EngineConfig, dataset: str) -> dict:
    if spec.loss == "directau":
        return {"gamma": spec.gamma}
    if spec.loss == "ssm":
        return {"temperature": cfg.ssm_temperature}
    if spec.loss == "mawu":
        return mawu_gammas(dataset, spec.backbone)
    return {}


def make_adam(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where PyTorch has one (CPU, CUDA): the same update rule, in
    one pass over each table instead of about eight (MF + BPR on Gowalla: 9 ms -> 2 ms a step,
    most of an epoch). Coupled L2 ``weight_decay`` as in ``torch.optim.Adam``."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


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
        self.num_negatives = self.loss_spec.negatives if cfg.negatives is None else cfg.negatives
        if self.loss_spec.negatives == 0:
            self.num_negatives = 0

        init_gen = torch.Generator().manual_seed(
            spec.seed
        )  # init on CPU: same weights on any device
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
        self.margins = (
            MawuMargins(data.num_users, data.num_items, generator=init_gen)
            if self.loss_spec.needs_margins
            else None
        )
        self.model.to(self.device)
        params = list(self.model.parameters())
        if self.margins is not None:
            self.margins.to(self.device)
            params += list(self.margins.parameters())
        self.optimizer = make_adam(
            params, spec.lr, optimizer_weight_decay(spec.decay, spec.weight_decay), self.device
        )
        self.sample_gen = torch.Generator(device=self.device).manual_seed(spec.seed + 1)

        self.train_users = torch.from_numpy(data.train[:, 0]).to(self.device)
        self.train_items = torch.from_numpy(data.train[:, 1]).to(self.device)
        self.train_sets = UserItemSets(data.train, data.num_users, self.device)
        self.val_sets = UserItemSets(data.val, data.num_users, self.device)
        self.item_stratum = torch.from_numpy(data.item_stratum.astype(np.int64)).to(self.device)
        self.state = RunState()
        needs_distinct_rows = (
            self.loss_spec.needs_uniformity_rows and cfg.uniformity_rows == "unique"
        ) or spec.decay == BATCH_ROW_DECAY
        # SSM-like losses normalise each distinct item once and index their items into it; their
        # users need no dedup where the encoder only gathers rows
        self.indexed_negatives = self.loss_spec.indexed_negatives and self.num_negatives > 0
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
                self.cfg.negative_sampling,
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
        loss = compute_loss(self.spec.loss, batch, **self.hparams)
        loss = loss + batch_decay_penalty(
            self.spec.decay, self.spec.weight_decay, user_out, item_out
        )
        self._tick("loss")
        return loss

    def train_epoch(self) -> float:
        self.model.train()
        n = len(self.train_users)
        self._tick(None)
        perm = torch.randperm(n, generator=self.sample_gen, device=self.device)
        total, batches = 0.0, 0
        show = sys.stderr.isatty()
        num_batches = math.ceil(n / self.cfg.batch_size)
        for b, start in enumerate(range(0, n, self.cfg.batch_size)):
            loss = self._batch_loss(perm[start : start + self.cfg.batch_size])
            value = float(loss.detach())
            if not math.isfinite(value):
                return value
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._tick("backward")
            self.optimizer.step()
            if self.margins is not None:
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
        self.model.eval()
        with torch.no_grad():
            user_out, item_out = self.model()
            scores = ("dot", "cosine") if self.cfg.cosine_validation else ("dot",)
            result = evaluate_rankings(
                user_out,
                item_out,
                self.val_sets,
                [self.train_sets],
                self.item_stratum,
                self.cfg.k,
                scores,
                strata=False,
            )
        out = {"val_ndcg": result["dot"]["ndcg"]}
        if "cosine" in result:
            out["val_ndcg_cosine"] = result["cosine"]["ndcg"]
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
        if not path or not path.exists():
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
    batch_size = dict(pair.split("=") for pair in args.batch_size)
    cfg = EngineConfig(
        dim=args.dim,
        max_epochs=args.max_epochs,
        patience=args.patience,
        batch_size=int(batch_size[spec.loss]),
        k=args.k,
        device=args.device,
        negatives=args.negatives,
        negative_sampling=args.negative_sampling,
        uniformity_rows=args.uniformity_rows,
        nlmf_relu=args.nlmf_relu,
        ssm_temperature=args.ssm_temperature,
        cosine_validation=args.cosine_validation,
        checkpoint_every=args.checkpoint_every,
    )
    data = load_split(args.split, args.degrees)
    work_dir = args.work_dir or args.out_model.parent / "work"
    t0 = time.perf_counter()
    trainer = Trainer(spec, data, cfg, args.dataset, work_dir)
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
        trainer.model.eval(), summary, data, cfg.k, trainer.device, args.out_metrics, args.out_norms
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


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument(
        "--batch-size",
        nargs="+",
        default=["bpr=16384", "ssm=16384", "directau=4096", "mawu=4096"],
        help="per loss, e.g. bpr=16384",
    )
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--negatives", type=int, default=None)
    p.add_argument("--negative-sampling", choices=["batch", "all"], default="batch")
    p.add_argument("--uniformity-rows", choices=["unique", "interactions"], default="unique")
    p.add_argument("--nlmf-relu", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--ssm-temperature", type=float, default=0.2)
    p.add_argument("--cosine-validation", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--checkpoint-every", type=int, default=5)


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
    add_engine_arguments(p)
    p.set_defaults(func=_command)
