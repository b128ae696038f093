"""``make bench``: every loss with MF and every backbone with DirectAU, on one machine in one run.

Workloads (Gowalla from a mirror, seed-123 split, the engine's default batch sizes and negative
pool): MF + BPR and MF + SSM (batch 16384, SSM with 10 negatives), MF + DirectAU and MF + MAWU,
NL-MF + DirectAU, LightGCN + DirectAU (batch 4096); six workloads, MF + DirectAU being in both
groups. Per workload: seconds per training epoch (``epoch_s engine=``, the fastest of
``--epochs``; the workloads take turns epoch by epoch), where a released-style loop exists (the
MF workloads) its time and the speedup, and the epoch's breakdown into sampling, encode, loss
forward, backward and optimizer; per backbone the seconds of one validation evaluation (dot,
cosine, and both in the one pass validation uses). Then the ratios the engine is held to
(issue #12: SSM <= 3x BPR, MAWU <= 1.5x DirectAU, NL-MF <= 1.5x and LightGCN <= 3x MF +
DirectAU), peak memory, and last ``speedup_vs_loader=<x>``, the smallest per-epoch speedup.
The first line names the CPU (or GPU).

The reference loop follows snap-research/PRISM's train.py / losses.py / evaluation_metrics.py:
batches come from a torch DataLoader over edge positions (shuffle=False) in the random order the
released split leaves them, whose collate gathers the batch's edges and relabels their nodes, as
PyG's LinkNeighborLoader (a DataLoader subclass) does for MF (no neighbours sampled: num_layers
0; the PyG loader itself needs pyg-lib or torch-sparse, neither installable here, so its
sampling step is reproduced with torch ops; this loader pass costs about 0.2 s per Gowalla
epoch, the released loader 0.28 s); negatives are drawn among the batch's items; the losses are
written as released (SSM's exp ratio, DirectAU's ``torch.pdist``, MAWU's broadcast margins and
``tril`` uniformity, its cosine matrix from one matmul instead of the released (n, d, n)
broadcast); unfused Adam; evaluation scores users in chunks of 1000, masks train items and
computes NDCG in a per-user Python loop. Its slow epochs are timed on ``--reference-batches``
batches and scaled to a whole epoch. ``--epochs``/``--max-batches`` shrink everything to a
CI-sized smoke run (times scaled to a whole epoch).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from prism_repro.data.interactions import finalize_interactions
from prism_repro.data.preprocess import parse_lightgcn
from prism_repro.data.split import SplitData, split_in_memory
from prism_repro.ranking import evaluate_rankings
from prism_repro.runspec import RunSpec
from prism_repro.train import EngineConfig, Trainer, resolve_device


def load_gowalla(mirror: Path, seed: int = 123) -> SplitData:
    parts = [parse_lightgcn(mirror / "gowalla" / name) for name in ("train.txt", "test.txt")]
    frame, meta = finalize_interactions(
        np.concatenate([u for u, _ in parts]), np.concatenate([i for _, i in parts])
    )
    return split_in_memory(
        frame[["user", "item"]].to_numpy(), meta["num_users"], meta["num_items"], seed
    )


def synthetic_data(users=2000, items=3000, seed=0) -> SplitData:
    from prism_repro.data.synthetic import generate

    baskets = generate(users, items, 40, 1.1, 8, seed)
    pairs = np.array([(u, i) for u, b in enumerate(baskets) for i in b], dtype=np.int64)
    return split_in_memory(pairs, users, items, seed=1)


# -- the reference loop (released-code style) ------------------------------------------------
REFERENCE_LOSSES = ("bpr", "ssm", "directau", "mawu")


class ReferenceLoop:
    """MF trained the way snap-research/PRISM:train.py does, for the four losses."""

    def __init__(
        self,
        data: SplitData,
        loss: str,
        batch_size: int,
        lr: float = 1e-3,
        dim: int = 64,
        seed: int = 123,
        device="cpu",
        negatives: int = 10,
        gammas: tuple[float, float] = (2.6, 1.4),
    ):
        if loss not in REFERENCE_LOSSES:
            raise ValueError(f"no reference loop for loss {loss!r}; choose from {REFERENCE_LOSSES}")
        torch.manual_seed(seed)
        self.data, self.loss, self.batch_size, self.device = (
            data,
            loss,
            batch_size,
            torch.device(device),
        )
        self.negatives = {"bpr": 1, "ssm": negatives}.get(loss, 0)
        self.gammas = gammas
        self.user = torch.nn.Embedding(data.num_users, dim, device=self.device)
        self.item = torch.nn.Embedding(data.num_items, dim, device=self.device)
        torch.nn.init.xavier_uniform_(self.user.weight)
        torch.nn.init.xavier_uniform_(self.item.weight)
        params = [self.user.weight, self.item.weight]
        if loss == "mawu":  # RecModel's margin tables, Xavier-uniform
            self.user_margin = torch.nn.Embedding(data.num_users, 1, device=self.device)
            self.item_margin = torch.nn.Embedding(data.num_items, 1, device=self.device)
            torch.nn.init.xavier_uniform_(self.user_margin.weight)
            torch.nn.init.xavier_uniform_(self.item_margin.weight)
            params += [self.user_margin.weight, self.item_margin.weight]
        self.opt = torch.optim.Adam(params, lr=lr, weight_decay=1e-6)
        # The released loader iterates its split's training edges in a fixed order
        # (LinkNeighborLoader, shuffle=False), and that order is random: RandomLinkSplit permutes
        # the edges before cutting train/val/test. Our split is sorted by user (about 150
        # distinct users per 4,096 edges instead of about 3,500), so permute once, seeded.
        edges = torch.from_numpy(data.train.T.copy())
        order = torch.randperm(edges.shape[1], generator=torch.Generator().manual_seed(seed))
        self.edges = edges[:, order]
        self.loader = DataLoader(
            range(self.edges.shape[1]),
            batch_size=batch_size,
            shuffle=False,
            collate_fn=self._collate,
        )

    def _collate(self, index: list[int]):
        """LinkNeighborLoader's collate for MF (no hops): the batch's nodes, relabelled to local ids."""
        users, items = self.edges[:, torch.tensor(index)]
        u_id, u_local = torch.unique(users, return_inverse=True)
        i_id, i_local = torch.unique(items, return_inverse=True)
        return [t.to(self.device) for t in (u_id, u_local, i_id, i_local)]  # batch.to(device)

    def _loss(self, u_id, u_local, i_id, i_local) -> torch.Tensor:
        eu, ei = self.user(u_id), self.item(i_id)
        b, k = len(u_local), self.negatives
        if self.loss in ("bpr", "ssm"):
            # negatives uniform over the batch's items; negative l of positive j at l * B + j
            neg = torch.randint(len(i_id), (b * k,), device=self.device)
            users = u_local.repeat(k + 1)
            items = torch.cat([i_local, neg])
            if self.loss == "bpr":
                preds = (eu[users] * ei[items]).sum(-1)
                pos, negs = preds[:b], preds[b:].view(k, b).T
                return -F.logsigmoid(pos[:, None] - negs).mean()
            preds = (F.normalize(eu[users], dim=-1) * F.normalize(ei[items], dim=-1)).sum(-1)
            pos, negs = preds[:b], preds[b:].view(k, b).T
            numerator = torch.exp(pos / 0.2)
            denominator = torch.exp(torch.cat([pos[:, None], negs], 1) / 0.2).sum(1)
            return -torch.log(numerator / denominator).mean()
        nu, ni = F.normalize(eu, dim=-1), F.normalize(ei, dim=-1)
        if self.loss == "directau":
            align = (nu[u_local] - ni[i_local]).norm(dim=1).pow(2).mean()
            unif = lambda x: torch.pdist(x).pow(2).mul(-2).exp().mean().log()  # noqa: E731
            return align + (unif(nu) + unif(ni)) / 2
        # MAWU: (B, 1) margins broadcast against the (B,) angle, as released. Its uniformity
        # takes F.cosine_similarity(x[:, :, None], x.t()[None]), an (n, d, n) tensor (3 GB at
        # n = 3,500); the same cosines come from one matmul here, a cheaper reference.
        margin = self.user_margin(u_id[u_local]) + self.item_margin(i_id[i_local])
        cos = (nu[u_local] * ni[i_local]).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7)
        angle = (torch.arccos(cos) + (1 - torch.sigmoid(margin))).clamp(0.0, math.pi)
        align = -torch.cos(angle).mean()

        def unif(x):
            cos = torch.tril(x @ x.T, diagonal=-1)
            return (2 - 2 * cos).mul(-2).exp().mean().log()

        loss = align + self.gammas[0] * unif(nu) + self.gammas[1] * unif(ni)
        with torch.no_grad():  # clip_margins() after the loss, before backward
            self.user_margin.weight.clamp_(0.0, 1.0)
            self.item_margin.weight.clamp_(0.0, 1.0)
        return loss

    def epoch(self, max_batches: int | None = None) -> float:
        total, n = 0.0, 0
        for b, batch in enumerate(self.loader):
            if max_batches is not None and b >= max_batches:
                break
            loss = self._loss(*batch)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += float(loss.detach())
            n += 1
        return total / max(n, 1)

    @torch.no_grad()
    def evaluate(self, score: str = "dot", k: int = 20) -> float:
        data = self.data
        user_w, item_w = self.user.weight, self.item.weight
        if score == "cosine":
            user_w, item_w = F.normalize(user_w, dim=-1), F.normalize(item_w, dim=-1)
        train_by_user = [[] for _ in range(data.num_users)]
        for u, i in data.train:
            train_by_user[u].append(i)
        held = [set() for _ in range(data.num_users)]
        for u, i in data.val:
            held[u].add(i)
        scores_all = []
        for start in range(0, data.num_users, 1000):
            scores = user_w[start : start + 1000] @ item_w.T
            for r in range(scores.shape[0]):
                if train_by_user[start + r]:
                    scores[r, train_by_user[start + r]] = -math.inf
            scores_all.append(torch.topk(scores, k).indices)
        top = torch.cat(scores_all).tolist()
        ndcgs = []
        for u in range(data.num_users):  # per-user loop, as the released code
            if not held[u]:
                continue
            dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(top[u]) if i in held[u])
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(held[u]))))
            ndcgs.append(dcg / idcg)
        return float(np.mean(ndcgs))


def amazonbook_sized_data(seed: int = 0) -> SplitData:
    """Random interactions with AmazonBook's shape (Table 2: 52,643 users, 91,599 items, about
    2.98 M interactions, at least 10 per user) and Zipf item popularity: for speed and memory."""
    users, items, total = 52_643, 91_599, 2_984_108
    rng = np.random.default_rng(seed)
    per_user = 10 + rng.multinomial(total - 10 * users, rng.dirichlet(np.full(users, 0.5)))
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    item_ids = rng.choice(rng.permutation(items), size=total, p=popularity / popularity.sum())
    keys = np.unique(np.repeat(np.arange(users, dtype=np.int64), per_user) * items + item_ids)
    pairs = np.stack([keys // items, keys % items], axis=1)
    return split_in_memory(pairs, users, items, seed=1)


def peak_memory(device: torch.device) -> str:
    text = f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    if device.type == "cuda":
        text += f" peak_gpu_mb={torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
    return text


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeat: int, device: torch.device | None = None):
    times, out = [], None
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), out


def cpu_model() -> str:
    """The CPU's marketing name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return ",".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@dataclass(frozen=True)
class Workload:
    backbone: str
    loss: str
    batch: int  # the engine's default batch size for the loss (add_engine_arguments)
    run_id: str

    @property
    def name(self) -> str:
        return f"{self.backbone}+{self.loss}"


# every loss with MF, every backbone with DirectAU (MF + DirectAU is in both groups)
WORKLOADS = (
    Workload("mf", "bpr", 16384, "mf_bpr_full1e-06_xavier_lr0.001_s123"),
    Workload("mf", "ssm", 16384, "mf_ssm_full1e-06_xavier_lr0.001_s123"),
    Workload("mf", "directau", 4096, "mf_directau-g1_full1e-06_xavier_lr0.001_s123"),
    Workload("mf", "mawu", 4096, "mf_mawu_full1e-06_xavier_lr0.001_s123"),
    Workload("nlmf", "directau", 4096, "nlmf_directau-g1_full1e-06_xavier_lr0.001_s123"),
    Workload("lightgcn", "directau", 4096, "lightgcn_directau-g1_full1e-06_xavier_lr0.001_s123"),
)
# (workload, baseline, target): epoch-time ratios the engine must stay under (issue #12)
RATIOS = (
    ("mf+ssm", "mf+bpr", 3.0),
    ("mf+mawu", "mf+directau", 1.5),
    ("nlmf+directau", "mf+directau", 1.5),
    ("lightgcn+directau", "mf+directau", 3.0),
)
STAGES = ("sampling", "encode", "loss", "backward", "optimizer")


def _trainer(data: SplitData, dataset: str, w: Workload, max_batches, device) -> Trainer:
    engine = Trainer(
        RunSpec.parse(w.run_id),
        data,
        EngineConfig(dim=64, max_epochs=1, batch_size=w.batch, device=device.type),
        dataset,
    )
    if max_batches is not None:
        engine.train_users = engine.train_users[: max_batches * w.batch]
        engine.train_items = engine.train_items[: max_batches * w.batch]
    return engine


def engine_timings(
    data: SplitData, dataset: str, epochs: int, max_batches: int | None, device: torch.device
) -> dict[str, dict]:
    """Per workload: seconds per training epoch (fastest of ``epochs``, scaled to a whole epoch
    when ``max_batches`` cuts it) and that epoch's stage breakdown, scaled alike.

    The workloads take turns epoch by epoch, so a change in the load of a shared machine hits
    all of them rather than one. On CPU the breakdown comes from the timed epochs (the stage
    clock costs nothing there); a GPU must synchronise at each stage, so there it comes from one
    extra epoch and the timed ones run without it.
    """
    trainers = {w.name: _trainer(data, dataset, w, max_batches, device) for w in WORKLOADS}
    for w in WORKLOADS:  # one untimed step each: first-call costs must not land on one workload
        engine = trainers[w.name]
        engine._batch_loss(torch.arange(min(w.batch, len(data.train)), device=device)).backward()
        engine.optimizer.step()
        engine.optimizer.zero_grad(set_to_none=True)
    out = {name: {"epoch": math.inf} for name in trainers}
    for _ in range(epochs):
        for w in WORKLOADS:
            engine = trainers[w.name]
            engine.stage_seconds = {} if device.type == "cpu" else None
            seconds, _ = timed(engine.train_epoch, 1, device)
            if seconds < out[w.name]["epoch"]:
                out[w.name].update(epoch=seconds, stages=engine.stage_seconds)
    for w in WORKLOADS:
        engine, row = trainers[w.name], out[w.name]
        if device.type != "cpu":
            engine.stage_seconds = {}
            engine.train_epoch()
            row["stages"] = engine.stage_seconds
        full = math.ceil(len(data.train) / w.batch)
        row["batches"] = math.ceil(len(engine.train_users) / w.batch)
        scale = full / row["batches"]
        row["epoch"] *= scale
        row["stages"] = {k: row["stages"].get(k, 0.0) * scale for k in STAGES}
        row["trainer"] = engine
    return out


def eval_timings(engine: Trainer) -> dict[str, float]:
    """Seconds per validation evaluation: dot, cosine, and both in the one pass validation uses."""
    engine.model.eval()
    with torch.no_grad():
        u, i = engine.model()
    out = {}
    for name, scores in (("dot", ("dot",)), ("cosine", ("cosine",)), ("both", ("dot", "cosine"))):
        out[name] = timed(
            lambda scores=scores: evaluate_rankings(
                u,
                i,
                engine.val_sets,
                [engine.train_sets],
                engine.item_stratum,
                20,
                scores,
                strata=False,
            ),
            1,
            engine.device,
        )[0]
    return out


def reference_timing(
    data: SplitData, w: Workload, epochs: int, batches: int, device: torch.device
) -> tuple[float, int, ReferenceLoop]:
    """The released-style loop's seconds per epoch, from its first ``batches`` batches (fastest
    of ``epochs`` passes) scaled to a whole epoch: its edge order is random, so every stretch of
    batches costs alike."""
    ref = ReferenceLoop(data, w.loss, w.batch, device=device)
    full = math.ceil(len(data.train) / w.batch)
    batches = min(batches, full)
    seconds, _ = timed(lambda: ref.epoch(batches), epochs, device)
    return seconds * full / batches, batches, ref


def _fmt(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def run(
    data: SplitData,
    epochs: int,
    max_batches: int | None,
    dataset: str,
    device: torch.device,
    reference_batches: int | None = None,
) -> float | None:
    """Print every workload, its breakdown, evaluation times and the ratios; return the smallest
    speedup over the reference loop (None: no reference run)."""
    print(f"negative_pool={EngineConfig().negative_pool} load_avg={load_average()}")
    sys.stdout.flush()
    ours = engine_timings(data, dataset, epochs, max_batches, device)
    if reference_batches is not None and max_batches is not None:
        reference_batches = min(reference_batches, max_batches)
    speedups, ref_eval, seen_backbones = [], None, set()
    for w in WORKLOADS:
        row = ours[w.name]
        line = f"workload={w.name} batch={w.batch} epoch_s engine={_fmt(row['epoch'])}"
        timed_batches = f"engine={row['batches']}"
        if reference_batches is not None and w.backbone == "mf" and w.loss in REFERENCE_LOSSES:
            ref_s, ref_batches, ref = reference_timing(data, w, epochs, reference_batches, device)
            speedups.append(ref_s / row["epoch"])
            line += f" reference={_fmt(ref_s)} speedup={speedups[-1]:.2f}x"
            timed_batches += f" reference={ref_batches}"
            if ref_eval is None:
                ref_eval = {
                    "dot": timed(lambda: ref.evaluate("dot"), 1, device)[0],
                    "cosine": timed(lambda: ref.evaluate("cosine"), 1, device)[0],
                }
        print(f"{line} batches_timed {timed_batches}")
        stages = " ".join(f"{k}={_fmt(row['stages'][k])}" for k in STAGES)
        print(f"workload={w.name} breakdown_s {stages}")
        if w.backbone not in seen_backbones:  # evaluation depends on the backbone only
            seen_backbones.add(w.backbone)
            ev = eval_timings(row["trainer"])
            text = f"backbone={w.backbone} eval_dot_s engine={ev['dot']:.2f}"
            if w.backbone == "mf" and ref_eval is not None:
                text += (
                    f" reference={ref_eval['dot']:.2f}; eval_cosine_s engine={ev['cosine']:.2f}"
                    f" reference={ref_eval['cosine']:.2f}; eval_both_s engine={ev['both']:.2f}"
                    f" reference={ref_eval['dot'] + ref_eval['cosine']:.2f}"
                )
            else:
                text += f"; eval_cosine_s engine={ev['cosine']:.2f}; eval_both_s engine={ev['both']:.2f}"
            print(text)
        sys.stdout.flush()
    for name, base, target in RATIOS:
        ratio = ours[name]["epoch"] / ours[base]["epoch"]
        verdict = "met" if ratio <= target else "NOT met"
        print(f"ratio {name}/{base}={ratio:.2f} target<={target:g} {verdict}")
    print(f"{peak_memory(device)} threads={torch.get_num_threads()} load_avg={load_average()}")
    return min(speedups) if speedups else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--mirror",
        type=Path,
        default=Path(__file__).resolve().parents[2].parent / "shared" / "data",
    )
    p.add_argument(
        "--epochs", type=int, default=1, help="epochs timed per workload (the fastest counts)"
    )
    p.add_argument(
        "--max-batches",
        type=int,
        default=None,
        help="CI-sized: only this many batches per epoch (times are scaled to a whole epoch)",
    )
    p.add_argument(
        "--reference-batches",
        type=int,
        default=20,
        help="batches of the released-style loop timed per workload, scaled to a whole epoch "
        "(its slow workloads take minutes per epoch)",
    )
    p.add_argument(
        "--synthetic", action="store_true", help="a synthetic dataset instead of Gowalla"
    )
    p.add_argument(
        "--amazonbook-sized",
        action="store_true",
        help="this engine alone on random data of AmazonBook's size",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except RuntimeError as err:
        p.error(str(err))
    if device.type == "cuda":
        print(f"device=cuda ({torch.cuda.get_device_name(device)}) cpu={cpu_model()!r}")
    else:
        capability = torch.backends.cpu.get_cpu_capability()
        print(f"device=cpu ({cpu_model()}, torch {capability}, {torch.get_num_threads()} threads)")
    if args.amazonbook_sized:
        data = amazonbook_sized_data()
        print(
            f"dataset=AmazonBook-sized users={data.num_users} items={data.num_items} "
            f"train={len(data.train)} val={len(data.val)}"
        )
        run(data, args.epochs, args.max_batches, "AmazonBook", device, reference_batches=None)
        return 0
    if args.synthetic:
        data, name = synthetic_data(), "Synthetic"
    elif (args.mirror / "gowalla" / "train.txt").exists():
        data, name = load_gowalla(args.mirror), "Gowalla"
    else:
        print(
            f"skipping the Gowalla workloads: no gowalla/train.txt under {args.mirror} "
            "(pass --mirror or --synthetic)"
        )
        return 0
    print(
        f"dataset={name} users={data.num_users} items={data.num_items} train={len(data.train)} "
        f"val={len(data.val)}"
    )
    speedup = run(data, args.epochs, args.max_batches, name, device, args.reference_batches)
    print(f"speedup_vs_loader={speedup:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
