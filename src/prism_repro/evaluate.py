"""Evaluate a trained run: full-ranking NDCG@k (overall and by popularity) and embedding norms.

Validation ranks with the train items masked; test masks train and validation items. For
LightGCN the test-time propagation graph is train + validation edges, as in the released code
(PyG ``RandomLinkSplit`` semantics).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from prism_repro.data.split import load_split
from prism_repro.io import write_parquet
from prism_repro.losses import wrap_for_loss
from prism_repro.models import build_encoder
from prism_repro.ranking import UserItemSets, evaluate_ranking
from prism_repro.runspec import RunSpec

METRIC_NAMES = ("ndcg", "ndcg_popular", "ndcg_neutral", "ndcg_unpopular")


def load_model(path: Path, data, device) -> tuple[torch.nn.Module, dict]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    summary = payload["summary"]
    spec = RunSpec.parse(summary["run"])
    engine = summary["engine"]
    model = build_encoder(
        spec.backbone,
        data.num_users,
        data.num_items,
        engine["dim"],
        train_edges=torch.from_numpy(data.train.T.copy()),
        relu=engine["nlmf_relu"],
    )
    model = wrap_for_loss(spec.loss, model, settings=SimpleNamespace(**engine))
    model.load_state_dict(
        {k.removeprefix("model."): v for k, v in payload["state"].items() if k.startswith("model.")}
    )
    return model.to(device).eval(), summary


def evaluate_model(
    model, data, k: int, device, test_graph: str = "train_val"
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Validation and test metrics, and the (user, item) outputs of the test-time model.

    Rankings use the model's ``ranking_outputs`` (its outputs, unless its score is not their dot
    product, as MACR's); the returned outputs are ``model()``'s (the embedding norms).
    ``test_graph`` (variant key lightgcn_test_graph): a graph encoder propagates over train +
    validation edges for the test ranking (``train_val``, the released code) or train edges."""
    stratum = torch.from_numpy(data.item_stratum.astype(np.int64)).to(device)
    train_sets = UserItemSets(data.train, data.num_users, device)
    val_sets = UserItemSets(data.val, data.num_users, device)
    test_sets = UserItemSets(data.test, data.num_users, device)
    out = {}
    with torch.no_grad():
        users, items = model.ranking_outputs()
        for name, value in evaluate_ranking(
            users, items, val_sets, [train_sets], stratum, k
        ).items():
            out[f"val_{name}"] = value
        if test_graph == "train_val":  # encoders without a graph ignore set_graph
            model.set_graph(torch.from_numpy(np.concatenate([data.train, data.val]).T.copy()))
            users, items = model.ranking_outputs()
        for name, value in evaluate_ranking(
            users, items, test_sets, [train_sets, val_sets], stratum, k
        ).items():
            out[f"test_{name}"] = value
        users, items = model()
    return out, users, items


def write_run_results(
    model,
    summary: dict,
    data,
    k: int,
    device,
    out_metrics: Path,
    out_norms: Path,
    test_graph: str = "train_val",
) -> dict:
    """Evaluate a trained model and write the run's metrics row and its embedding norms."""
    if summary["diverged"] and summary["best_epoch"] == 0:
        metrics = {f"{s}_{m}": float("nan") for s in ("val", "test") for m in METRIC_NAMES}
        users = items = None
    else:
        metrics, users, items = evaluate_model(model, data, k, device, test_graph)
    row = {key: value for key, value in summary.items() if key != "engine"}
    row.update({f"engine_{key}": value for key, value in summary["engine"].items()})
    row.update(metrics)
    row["k"] = k
    write_parquet(pd.DataFrame([row]), out_metrics)
    norms = []
    for node, out, degree in (("user", users, data.user_degree), ("item", items, data.item_degree)):
        norm = (
            out.detach().norm(dim=1).cpu().numpy()
            if out is not None
            else np.full(len(degree), np.nan)
        )
        frame = pd.DataFrame(
            {"node": node, "id": np.arange(len(degree)), "degree": degree, "norm": norm}
        )
        frame["stratum"] = data.item_stratum if node == "item" else -1
        norms.append(frame)
    write_parquet(
        pd.concat(norms, ignore_index=True).assign(run=summary["run"], dataset=summary["dataset"]),
        out_norms,
    )
    return metrics


def _command(args: argparse.Namespace) -> None:
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    data = load_split(args.split, args.degrees)
    model, summary = load_model(args.model, data, device)
    write_run_results(model, summary, data, args.k, device, args.out_metrics, args.out_norms)


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="re-evaluate a saved model.pt (the train command already evaluates)"
    )
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--degrees", type=Path, required=True)
    p.add_argument("--out-metrics", type=Path, required=True)
    p.add_argument("--out-norms", type=Path, required=True)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_command)
