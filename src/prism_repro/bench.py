"""``make bench``: this engine against a loop built the way the released code works, same data.

Workloads (Gowalla from a mirror, seed-123 split): MF + DirectAU (batch 4096) and MF + BPR
(batch 16384). For each: seconds per training epoch and per full validation evaluation (dot,
cosine, and both in the one pass validation uses) for both loops, and the process's peak
memory. The last line is ``speedup_vs_loader=<x>``, the smallest per-epoch speedup.

The reference loop follows snap-research/PRISM's train.py / evaluation_metrics.py: batches come
from a torch DataLoader over edge positions (shuffle=False) whose collate gathers the batch's
edges and relabels their nodes, as PyG's LinkNeighborLoader (a DataLoader subclass) does for MF
(no neighbours sampled: num_layers 0; the PyG loader itself needs pyg-lib or torch-sparse,
neither installable here, so its sampling step is reproduced with torch ops; this loader pass
costs about 0.2 s per Gowalla epoch, the released loader 0.28 s), negatives are drawn
among the batch's items, DirectAU's uniformity uses ``torch.pdist``, and evaluation scores users
in chunks of 1000, masks train items and computes NDCG in a per-user Python loop.
``--epochs``/``--max-batches`` shrink it to a CI-sized smoke run.
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import sys
import time
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
class ReferenceLoop:
    def __init__(
        self,
        data: SplitData,
        loss: str,
        batch_size: int,
        lr: float = 1e-3,
        dim: int = 64,
        seed: int = 123,
        device="cpu",
    ):
        torch.manual_seed(seed)
        self.data, self.loss, self.batch_size, self.device = (
            data,
            loss,
            batch_size,
            torch.device(device),
        )
        self.user = torch.nn.Embedding(data.num_users, dim, device=self.device)
        self.item = torch.nn.Embedding(data.num_items, dim, device=self.device)
        torch.nn.init.xavier_uniform_(self.user.weight)
        torch.nn.init.xavier_uniform_(self.item.weight)
        self.opt = torch.optim.Adam([self.user.weight, self.item.weight], lr=lr, weight_decay=1e-6)
        self.edges = torch.from_numpy(data.train.T.copy())
        # LinkNeighborLoader is a torch DataLoader over edge positions whose collate builds the
        # batch's subgraph; with shuffle=False as released
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

    def epoch(self, max_batches: int | None = None) -> float:
        total, n = 0.0, 0
        for b, (u_id, u_local, i_id, i_local) in enumerate(self.loader):
            if max_batches is not None and b >= max_batches:
                break
            eu, ei = self.user(u_id), self.item(i_id)
            if self.loss == "bpr":
                neg = torch.randint(len(i_id), (len(u_local),), device=self.device)
                pos_s = (eu[u_local] * ei[i_local]).sum(-1)
                neg_s = (eu[u_local] * ei[neg]).sum(-1)
                loss = -F.logsigmoid(pos_s - neg_s).mean()
            else:
                nu, ni = F.normalize(eu, dim=-1), F.normalize(ei, dim=-1)
                align = (nu[u_local] - ni[i_local]).norm(dim=1).pow(2).mean()
                unif = lambda x: torch.pdist(x).pow(2).mul(-2).exp().mean().log()  # noqa: E731
                loss = align + (unif(nu) + unif(ni)) / 2
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


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times), out


WORKLOADS = (
    ("directau", 4096, "mf_directau-g1_full1e-06_xavier_lr0.001_s123"),
    ("bpr", 16384, "mf_bpr_full1e-06_xavier_lr0.001_s123"),
)


def engine_timings(
    data: SplitData,
    dataset: str,
    batch: int,
    run_id: str,
    epochs: int,
    max_batches: int | None,
    device: torch.device,
) -> dict:
    """Seconds per training epoch (fastest of ``epochs``) and per validation evaluation."""
    engine = Trainer(
        RunSpec.parse(run_id),
        data,
        EngineConfig(dim=64, max_epochs=epochs, batch_size=batch, device=device.type),
        dataset,
    )
    if max_batches is not None:
        engine.train_users, engine.train_items = (
            engine.train_users[: max_batches * batch],
            engine.train_items[: max_batches * batch],
        )
    out = {"epoch": timed(engine.train_epoch, epochs)[0]}
    engine.model.eval()
    with torch.no_grad():
        u, i = engine.model()
    for name, scores in (
        ("dot", ("dot",)),
        ("cosine", ("cosine",)),
        ("both", ("dot", "cosine")),
    ):  # both: one pass, as validation runs it
        out[name] = timed(
            lambda: evaluate_rankings(
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
        )[0]
    return out


def run(
    data: SplitData, epochs: int, max_batches: int | None, dataset: str, device: torch.device
) -> float:
    speedups = []
    for loss, batch, run_id in WORKLOADS:
        ours = engine_timings(data, dataset, batch, run_id, epochs, max_batches, device)
        ref = ReferenceLoop(data, loss, batch, device=device)
        ref_epoch, _ = timed(lambda: ref.epoch(max_batches), epochs)
        ref_dot, _ = timed(lambda: ref.evaluate("dot"), 1)
        ref_cos, _ = timed(lambda: ref.evaluate("cosine"), 1)
        speedup = ref_epoch / ours["epoch"]
        speedups.append(speedup)
        print(
            f"workload=mf+{loss} batch={batch} epoch_s engine={ours['epoch']:.2f} reference={ref_epoch:.2f} speedup={speedup:.2f}x"
        )
        print(
            f"workload=mf+{loss} eval_dot_s engine={ours['dot']:.2f} reference={ref_dot:.2f}; eval_cosine_s engine={ours['cosine']:.2f} reference={ref_cos:.2f}; "
            f"eval_both_s engine={ours['both']:.2f} reference={ref_dot + ref_cos:.2f}"
        )
        sys.stdout.flush()
    print(f"{peak_memory(device)} threads={torch.get_num_threads()}")
    return min(speedups)


def run_engine_only(
    data: SplitData, epochs: int, max_batches: int | None, dataset: str, device: torch.device
) -> None:
    for loss, batch, run_id in WORKLOADS:
        ours = engine_timings(data, dataset, batch, run_id, epochs, max_batches, device)
        print(
            f"workload=mf+{loss} batch={batch} epoch_s engine={ours['epoch']:.2f}; eval_dot_s {ours['dot']:.2f} eval_cosine_s {ours['cosine']:.2f} "
            f"eval_both_s {ours['both']:.2f}"
        )
        sys.stdout.flush()
    print(f"{peak_memory(device)} threads={torch.get_num_threads()}")


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
        "--epochs", type=int, default=2, help="epochs timed per loop (the fastest counts)"
    )
    p.add_argument(
        "--max-batches", type=int, default=None, help="CI-sized: only this many batches per epoch"
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
    print(
        f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()})"
    )
    if args.amazonbook_sized:
        data = amazonbook_sized_data()
        print(
            f"dataset=AmazonBook-sized users={data.num_users} items={data.num_items} train={len(data.train)} val={len(data.val)}"
        )
        run_engine_only(data, args.epochs, args.max_batches, "AmazonBook", device)
        return 0
    if args.synthetic:
        data, name = synthetic_data(), "Synthetic"
    elif (args.mirror / "gowalla" / "train.txt").exists():
        data, name = load_gowalla(args.mirror), "Gowalla"
    else:
        print(
            f"skipping the Gowalla workloads: no gowalla/train.txt under {args.mirror} (pass --mirror or --synthetic)"
        )
        return 0
    print(
        f"dataset={name} users={data.num_users} items={data.num_items} train={len(data.train)} val={len(data.val)}"
    )
    speedup = run(data, args.epochs, args.max_batches, name, device)
    print(f"speedup_vs_loader={speedup:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
