"""Monte-Carlo check of the theory (Observation 1, Theorem 3.1, Corollaries 1 and 2).

Mini-batch training of user and item embedding tables with a cosine alignment loss,
L = -sum_{(u, i) in B} cos(u, i) (+ sum over negatives of cos(u, n)), on an interaction graph (a
synthetic power-law one, or a dataset's train split). Per step and per item it records whether the
item was in the batch, how often, its squared norm before and after, and what the theory predicts
for that step from the state the step starts from; per item-degree bin it reports the empirical
batch-inclusion probability against Observation 1 (Corollary 2 with negatives) and the mean change
of the squared norm against Theorem 3.1 (Corollary 1 under batched decay), with Monte-Carlo errors.

The state-conditional prediction uses the current ||i||^2 and the mean of (1 - cos^2(u, i)) /
||i||^2 over the item's train interactions, so Theorem 3.1 is checked as the one-step identity it
is, at any point of training. Under plain gradient descent with one (u, i) pair per item in the
batch the change is exact: ||i'||^2 = (1 - eta lambda)^2 ||i||^2 + eta^2 (1 - cos^2) / ||i||^2,
since the cosine gradient is orthogonal to i. Float64 throughout: a step changes ||i||^2 by ~eta^2.

Scenarios (``SCENARIOS``):

* ``sgd``: the theorem's setting. Plain gradient descent, full-table decay, batches of distinct
  interactions (an epoch's shuffled slices) and one (u, i) pair per item per batch (the first
  drawn), which is the update the theorem's second term describes.
* ``sgd_all_pairs``: every sampled pair contributes (the summed loss as written): an item with k
  of its interactions in the batch gets k cosine gradients.
* ``adam``: the paper's optimizer, Adam with coupled L2 (``Adam(weight_decay=lambda)``, the
  released code's full-table decay), every pair contributing.
* ``sgd_negatives``: ``sgd`` plus gamma |B| distinct uniform negatives per batch, each paired with
  a random user of the batch and pushed away (+cos); against Corollary 2.
* ``sgd_batched``: ``sgd`` with decay on the batch's rows only; against Corollary 1.
* ``sgd_replacement``: ``sgd`` with |B| draws with replacement (the paper's stated assumption),
  whose exact inclusion probability is 1 - (1 - d/|E|)^|B|, not Observation 1's.

Initialisation ("for explanatory purposes", as the paper's Figure 7): every row has ||x||^2 = 1
and points near one shared direction, so that cos^2(u, i) ~ ``cos_sq`` for every pair at the start.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prism_repro import theory
from prism_repro.io import read_parquet_metadata, write_parquet

log = logging.getLogger("prism_repro.simulate")


@dataclass(frozen=True)
class Scenario:
    optimizer: str  # sgd | adam
    decay: str  # full | batched
    sampler: str  # shuffle | replacement
    pairs: str  # one (per item per batch) | all
    negatives: bool  # gamma uniform distinct negatives per positive


SCENARIOS = {
    "sgd": Scenario("sgd", "full", "shuffle", "one", False),
    "sgd_all_pairs": Scenario("sgd", "full", "shuffle", "all", False),
    "adam": Scenario("adam", "full", "shuffle", "all", False),
    "sgd_negatives": Scenario("sgd", "full", "shuffle", "one", True),
    "sgd_batched": Scenario("sgd", "batched", "shuffle", "one", False),
    "sgd_replacement": Scenario("sgd", "full", "replacement", "one", False),
}


@dataclass
class Graph:
    """Train interactions as parallel (user, item) id arrays."""

    name: str
    users: np.ndarray
    items: np.ndarray
    num_users: int
    num_items: int

    @property
    def num_edges(self) -> int:
        return len(self.users)

    def item_degree(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.num_items)


def power_law_graph(users: int, items: int, interactions: int, exponent: float, seed: int) -> Graph:
    """A bipartite graph whose item degrees follow a Zipf law (item of rank r drawn with weight
    r^-exponent), users uniform, duplicate pairs removed; items left without an interaction are
    dropped and the rest renumbered."""
    if min(users, items, interactions) < 1 or exponent < 0:
        raise ValueError("power-law graph: users, items, interactions must be >= 1, exponent >= 0")
    rng = np.random.default_rng(seed)
    weight = 1.0 / np.arange(1, items + 1) ** exponent
    item = rng.choice(items, size=interactions, p=weight / weight.sum())
    user = rng.integers(users, size=interactions)
    pairs = np.unique(user.astype(np.int64) * items + item)
    user, item = pairs // items, pairs % items
    kept, item = np.unique(item, return_inverse=True)
    return Graph("powerlaw", user, item.astype(np.int64), users, len(kept))


def graph_from_split(path: Path, name: str) -> Graph:
    """The train interactions (split code 0) of a pipeline split file."""
    frame = pd.read_parquet(path, columns=["user", "item", "split"])
    meta = read_parquet_metadata(path)
    train = frame[frame["split"] == 0]
    return Graph(
        name,
        train["user"].to_numpy(np.int64),
        train["item"].to_numpy(np.int64),
        int(meta.get("num_users", frame["user"].max() + 1)),
        int(meta.get("num_items", frame["item"].max() + 1)),
    )


def degree_bins(degree: np.ndarray, bins: int) -> np.ndarray:
    """Integer edges of up to ``bins`` log-spaced degree bins [lo, hi) covering 1..max degree."""
    top = int(degree.max()) + 1
    edges = np.unique(np.floor(np.logspace(0, np.log10(top), bins + 1)).astype(np.int64))
    edges[-1] = max(edges[-1], top)
    return edges


def planted_init(n: int, dim: int, cos_sq: float, anchor: torch.Tensor, gen: torch.Generator):
    """Unit rows near ``anchor``: x = a + sigma w, w ~ N(0, I/dim), normalised, where
    sigma^2 = 1/cos - 1 makes cos(x, y) ~ sqrt(cos_sq) for two such rows."""
    sigma = math.sqrt(max(1.0 / math.sqrt(cos_sq) - 1.0, 0.0)) if cos_sq > 0 else 1e3
    x = anchor + sigma * torch.randn(n, dim, generator=gen, dtype=torch.float64) / math.sqrt(dim)
    return x / x.norm(dim=1, keepdim=True)


class _Batches:
    """Batches of edge indices: an epoch's shuffled slices (incomplete last slice dropped) or
    draws with replacement."""

    def __init__(self, num_edges: int, size: int, sampler: str, gen: torch.Generator, device):
        self.n, self.size, self.sampler, self.gen, self.device = (
            num_edges,
            size,
            sampler,
            gen,
            device,
        )
        self.perm, self.pos = None, num_edges

    def __next__(self) -> torch.Tensor:
        if self.sampler == "replacement":
            return torch.randint(self.n, (self.size,), generator=self.gen, device=self.device)
        if self.pos + self.size > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.pos = 0
        batch = self.perm[self.pos : self.pos + self.size]
        self.pos += self.size
        return batch


def _first_per_item(items: torch.Tensor, num_items: int) -> torch.Tensor:
    """Positions of the first occurrence of each distinct item in ``items``."""
    pos = torch.arange(len(items), device=items.device)
    first = torch.full((num_items,), len(items), device=items.device).scatter_reduce(
        0, items, pos, reduce="amin"
    )
    return first[first < len(items)]


# A bin's drift check counts when the theory expects this many inclusion events in it: with
# fewer, its mean change rests on a handful of gradient steps and the normal approximation of the
# paired difference behind ``drift_z`` does not hold.
MIN_EVENTS = 20
CHUNK = 1 << 15  # pairs per chunk: bounds the (chunk, dim) temporaries of large batches


def _pair_cosines(Uh: torch.Tensor, Vh: torch.Tensor, pu: torch.Tensor, pi: torch.Tensor):
    """cos(u, i) of each (pu, pi) pair from the unit rows ``Uh``, ``Vh``."""
    out = torch.empty(len(pu), dtype=Uh.dtype, device=Uh.device)
    for s in range(0, len(pu), CHUNK):
        a, b = Uh.index_select(0, pu[s : s + CHUNK]), Vh.index_select(0, pi[s : s + CHUNK])
        out[s : s + CHUNK] = torch.einsum("ij,ij->i", a, b)
    return out


def _cos_gradients(Uh, u_norm, Vh, v_norm, pu, pi, sign):
    """Gradient tables (users, items) of -sum_j sign_j cos(u_j, i_j) over the pairs (pu, pi):
    a pair adds -sign (i^ - cos u^) / ||u|| to row u and -sign (u^ - cos i^) / ||i|| to row i.
    Also returns, per item, the sum of cos^2 over its pairs."""
    GU, GV = torch.zeros_like(Uh), torch.zeros_like(Vh)
    pair_cos2 = torch.zeros(len(Vh), dtype=Vh.dtype, device=Vh.device)
    for s in range(0, len(pu), CHUNK):
        u, i, sg = pu[s : s + CHUNK], pi[s : s + CHUNK], sign[s : s + CHUNK, None]
        uh, vh = Uh.index_select(0, u), Vh.index_select(0, i)
        c = torch.einsum("ij,ij->i", uh, vh)[:, None]
        GU.index_add_(0, u, -sg * (vh - c * uh) / u_norm[u, None])
        GV.index_add_(0, i, -sg * (uh - c * vh) / v_norm[i, None])
        pair_cos2.index_add_(0, i, c[:, 0] ** 2)
    return GU, GV, pair_cos2


@torch.no_grad()
def simulate(
    graph: Graph,
    scenario: str,
    batch_fraction: float,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    dim: int = 64,
    cos_sq: float = theory.FIG7_COS_SQ,
    negatives: float = 1.0,
    bins: int = 12,
    burn_in: int = 0,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """One Monte-Carlo run of ``steps`` recorded steps (after ``burn_in`` unrecorded ones); one row
    per item-degree bin with at least one item."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {sorted(SCENARIOS)}")
    sc = SCENARIOS[scenario]
    if not 0 < batch_fraction <= 1:
        raise ValueError(f"batch fraction must lie in (0, 1], got {batch_fraction}")
    if steps < 2 or burn_in < 0 or dim < 2 or bins < 1:
        raise ValueError("need steps >= 2, burn_in >= 0, dim >= 2 and bins >= 1")
    if lr <= 0 or weight_decay < 0 or not 0 < cos_sq <= 1 or negatives <= 0:
        raise ValueError("need lr > 0, weight_decay >= 0, 0 < cos_sq <= 1 and negatives > 0")
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    init_gen = torch.Generator().manual_seed(seed)
    E, n_items = graph.num_edges, graph.num_items
    size = max(1, min(E, round(batch_fraction * E)))
    n_neg = min(n_items, round(negatives * size)) if sc.negatives else 0
    eu = torch.from_numpy(graph.users).to(dev)
    ei = torch.from_numpy(graph.items).to(dev)

    anchor = torch.randn(dim, generator=init_gen, dtype=torch.float64)
    anchor /= anchor.norm()
    U = planted_init(graph.num_users, dim, cos_sq, anchor, init_gen).to(dev)
    V = planted_init(n_items, dim, cos_sq, anchor, init_gen).to(dev)
    adam = None
    if sc.optimizer == "adam":
        U, V = torch.nn.Parameter(U), torch.nn.Parameter(V)
        adam = torch.optim.Adam([U, V], lr=lr, weight_decay=weight_decay)
    elif sc.optimizer != "sgd":
        raise ValueError(f"unknown optimizer {sc.optimizer!r}")

    degree_np = graph.item_degree()
    edges = degree_bins(degree_np, bins)
    bin_np = np.searchsorted(edges, degree_np, side="right") - 1
    bin_np[degree_np == 0] = -1
    nb = len(edges) - 1
    per_bin = np.bincount(bin_np[bin_np >= 0], minlength=nb)
    valid = torch.from_numpy(bin_np >= 0).to(dev)
    bin_of = torch.from_numpy(np.where(bin_np >= 0, bin_np, 0)).to(dev)
    count = torch.from_numpy(per_bin).to(dev, torch.float64).clamp_min(1)
    degree = torch.from_numpy(degree_np).to(dev, torch.float64)
    inv_deg = 1.0 / degree.clamp_min(1)

    frac = size / E
    p_pos = theory.inclusion_probability(degree_np, frac)
    exact_pos = theory.inclusion_probability_exact(degree_np, size, E, sc.sampler)
    neg_frac = n_neg / n_items
    if sc.negatives:
        p_theory = theory.inclusion_probability_with_negatives(degree_np, frac, neg_frac)
        p_exact = 1 - (1 - exact_pos) * (1 - neg_frac)
    else:
        p_theory, p_exact = p_pos, exact_pos
    p_item = torch.from_numpy(p_theory).to(dev)

    names = ("incl", "copies", "drift", "pred", "decay", "grad", "sq", "cos2", "growth", "pcos2")
    rec = torch.zeros(steps, nb, len(names), dtype=torch.float64, device=dev)
    bins_valid = bin_of[valid]
    batches = _Batches(E, size, sc.sampler, gen, dev)
    el = lr * weight_decay
    started = time.perf_counter()
    for t in range(-burn_in, steps):
        Ud, Vd = U.detach(), V.detach()
        sq = (Vd * Vd).sum(1)
        u_norm, v_norm = Ud.norm(dim=1), sq.sqrt()
        Uh, Vh = Ud / u_norm[:, None], Vd / v_norm[:, None]
        # state-conditional prediction: E over the item's interactions of (1 - cos^2) / ||i||^2
        cos = _pair_cosines(Uh, Vh, eu, ei)
        cos2 = torch.zeros(n_items, dtype=torch.float64, device=dev).index_add_(0, ei, cos * cos)
        cos2 *= inv_deg
        growth = (1 - cos2) / sq
        decay = sq * el * (el - 2.0)
        grad_term = p_item * lr**2 * growth
        if sc.decay == "batched":
            decay = p_item * decay
        pred = decay + grad_term

        idx = next(batches)
        pu, pi = eu[idx], ei[idx]
        sign = torch.ones(len(idx), dtype=torch.float64, device=dev)
        if n_neg:
            ni = torch.randperm(n_items, generator=gen, device=dev)[:n_neg]
            nu = pu[torch.randint(len(pu), (n_neg,), generator=gen, device=dev)]
            pu, pi = torch.cat([pu, nu]), torch.cat([pi, ni])
            sign = torch.cat([sign, -torch.ones(n_neg, dtype=torch.float64, device=dev)])
        if sc.pairs == "one":
            keep = _first_per_item(pi, n_items)
            pu, pi, sign = pu[keep], pi[keep], sign[keep]
        copies = torch.bincount(pi, minlength=n_items).to(torch.float64)
        GU, GV, pair_cos2 = _cos_gradients(Uh, u_norm, Vh, v_norm, pu, pi, sign)
        if adam is not None:
            U.grad, V.grad = GU, GV
            adam.step()
        else:
            if sc.decay == "batched":
                in_u = torch.zeros(graph.num_users, dtype=torch.float64, device=dev)
                in_u[pu] = 1.0
                GU += weight_decay * U * in_u[:, None]
                GV += weight_decay * V * (copies > 0).to(torch.float64)[:, None]
            else:
                GU += weight_decay * U
                GV += weight_decay * V
            U -= lr * GU
            V -= lr * GV
        drift = (V.detach() ** 2).sum(1) - sq
        if not torch.isfinite(drift).all():
            raise FloatingPointError(f"{scenario} at |B|/|E| = {frac:g}: non-finite norms")
        if t >= 0:
            cols = (copies > 0, copies, drift, pred, decay, grad_term, sq, cos2, growth, pair_cos2)
            stacked = torch.stack([c.to(torch.float64) for c in cols], dim=1)[valid]
            rec[t].index_add_(0, bins_valid, stacked)
    rec /= count[None, :, None]
    seconds = time.perf_counter() - started
    r = {k: rec[:, :, j].cpu().numpy() for j, k in enumerate(names)}

    def bin_avg(x):
        return np.bincount(bin_np[bin_np >= 0], weights=x[bin_np >= 0], minlength=nb) / np.maximum(
            per_bin, 1
        )

    n_obs = per_bin * steps
    p_t = bin_avg(p_theory)
    p_sim = r["incl"].mean(0)
    p_se = np.sqrt(p_t * (1 - p_t) / np.maximum(n_obs, 1))
    diff = r["drift"] - r["pred"]
    drift_se = diff.std(0, ddof=1) / math.sqrt(steps) if steps > 1 else np.full(nb, np.nan)
    drift_sim, drift_pred = r["drift"].mean(0), r["pred"].mean(0)
    included = r["incl"].sum(0)
    frame = pd.DataFrame(
        {
            "graph": graph.name,
            "scenario": scenario,
            **{k: v for k, v in asdict(sc).items()},
            "negatives_per_positive": negatives if sc.negatives else 0.0,
            "lr": lr,
            "weight_decay": weight_decay,
            "dim": dim,
            "init_cos_sq": cos_sq,
            "steps": steps,
            "burn_in": burn_in,
            "seed": seed,
            "num_users": graph.num_users,
            "num_items": n_items,
            "num_edges": E,
            "batch_size": size,
            "batch_fraction": frac,
            "negative_fraction": neg_frac,
            "bin": np.arange(nb),
            "degree_lo": edges[:-1],
            "degree_hi": edges[1:],
            "degree_mean": bin_avg(degree_np.astype(float)),
            "items": per_bin,
            "p_theory": p_t,
            "p_exact": bin_avg(p_exact),
            "p_sim": p_sim,
            "p_se": p_se,
            "p_z": binomial_z(p_sim * n_obs, n_obs, p_t),
            "p_exact_z": binomial_z(p_sim * n_obs, n_obs, bin_avg(p_exact)),
            "events": p_t * n_obs,
            "resolved": p_t * n_obs >= MIN_EVENTS,
            "copies": np.divide(
                r["copies"].sum(0), included, out=np.full(nb, np.nan), where=included > 0
            ),
            "sq_norm": r["sq"].mean(0),
            "cos_sq": r["cos2"].mean(0),
            # cos^2 of the pairs that moved the items (over all pairs, each inclusion event)
            "pair_cos_sq": np.divide(
                r["pcos2"].sum(0),
                r["copies"].sum(0),
                out=np.full(nb, np.nan),
                where=r["copies"].sum(0) > 0,
            ),
            "growth": r["growth"].mean(0),
            "drift_sim": drift_sim,
            "drift_pred": drift_pred,
            "decay_pred": r["decay"].mean(0),
            "gradient_pred": r["grad"].mean(0),
            "drift_se": drift_se,
            "drift_z": _z(drift_sim - drift_pred, drift_se),
            "drift_rel": np.divide(
                drift_sim - drift_pred,
                np.abs(drift_pred),
                out=np.full(nb, np.nan),
                where=drift_pred != 0,
            ),
            "per_inclusion_sim": np.divide(
                drift_sim, p_sim, out=np.full(nb, np.nan), where=p_sim > 0
            ),
            "seconds": seconds,
        }
    )
    return frame[frame["items"] > 0].reset_index(drop=True)


def _z(diff: np.ndarray, se: np.ndarray) -> np.ndarray:
    """diff / se; 0 where both vanish (a deterministic bin), +-inf where only se does."""
    diff, se = np.asarray(diff, float), np.asarray(se, float)
    out = np.where(diff == 0, 0.0, np.copysign(np.inf, diff))
    return np.divide(diff, se, out=out, where=se > 0)


def binomial_z(successes, trials, p) -> np.ndarray:
    """Signed z-equivalent of the exact two-sided binomial test of ``successes`` in ``trials``
    against probability ``p``: norm.isf(pvalue / 2), signed like successes / trials - p. Exact
    where the normal approximation fails (a handful of rare outcomes); capped at 40."""
    from scipy.stats import binomtest, norm

    k, n, p = np.broadcast_arrays(
        np.rint(np.asarray(successes, float)).astype(np.int64), np.asarray(trials), np.asarray(p)
    )
    out = np.zeros(k.shape)
    for j in np.ndindex(k.shape):
        if n[j] <= 0:
            out[j] = np.nan
            continue
        pj = float(np.clip(p[j], 0.0, 1.0))
        pvalue = (
            binomtest(int(k[j]), int(n[j]), pj).pvalue
            if 0 < pj < 1
            else float(k[j] == round(pj * n[j]))
        )
        out[j] = np.copysign(min(norm.isf(pvalue / 2), 40.0), k[j] / n[j] - pj) + 0.0
    return out


def run_all(
    graph: Graph,
    scenarios: list[str],
    batch_fractions: list[float],
    **kwargs,
) -> pd.DataFrame:
    frames = []
    for scenario in scenarios:
        for f in batch_fractions:
            frame = simulate(graph, scenario, f, **kwargs)
            log.info(
                "%s %s |B|/|E|=%g: %.1f s, max |z| inclusion %.2f, drift %.2f",
                graph.name,
                scenario,
                f,
                frame["seconds"].iloc[0],
                np.nanmax(np.abs(frame["p_z"])),
                np.nanmax(np.abs(frame["drift_z"])),
            )
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _command(args: argparse.Namespace) -> None:
    from prism_repro.cli import UserError
    from prism_repro.train import resolve_device

    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        raise UserError(f"unknown scenario(s) {unknown}; choose from {sorted(SCENARIOS)}")
    if args.split is not None:
        if not args.split.exists():
            raise UserError(f"split file {args.split} does not exist")
        graph = graph_from_split(args.split, args.name or args.split.parent.name)
    else:
        graph = power_law_graph(
            args.users, args.items, args.interactions, args.zipf_exponent, args.graph_seed
        )
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    log.info(
        "graph %s: %d users, %d items, %d interactions, max item degree %d; device %s",
        graph.name,
        graph.num_users,
        graph.num_items,
        graph.num_edges,
        graph.item_degree().max(),
        device,
    )
    try:
        frame = run_all(
            graph,
            args.scenarios,
            args.batch_fractions,
            steps=args.steps,
            lr=args.lr,
            weight_decay=args.weight_decay,
            dim=args.dim,
            cos_sq=args.cos_sq,
            negatives=args.negatives,
            bins=args.degree_bins,
            burn_in=args.burn_in,
            seed=args.seed,
            device=device,
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    write_parquet(frame, args.out, metadata={"graph": graph.name, "scenarios": args.scenarios})


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="Monte-Carlo check of Observation 1, Theorem 3.1 and Corollaries 1-2 (parquet out)",
    )
    src = p.add_argument_group("graph: a split file's train interactions, else a power-law graph")
    src.add_argument("--split", type=Path, help="split_s<seed>.parquet of a dataset")
    src.add_argument("--name", help="graph name in the output (default: the split's folder)")
    src.add_argument("--users", type=int, default=2000)
    src.add_argument("--items", type=int, default=2000)
    src.add_argument("--interactions", type=int, default=40000)
    src.add_argument("--zipf-exponent", type=float, default=1.0)
    src.add_argument("--graph-seed", type=int, default=7)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    p.add_argument("--batch-fractions", type=float, nargs="+", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--burn-in", type=int, default=0, help="unrecorded steps before the recorded")
    p.add_argument("--lr", type=float, default=theory.FIG7_LR)
    p.add_argument("--weight-decay", type=float, default=theory.FIG7_WEIGHT_DECAY)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--cos-sq", type=float, default=theory.FIG7_COS_SQ)
    p.add_argument("--negatives", type=float, default=1.0)
    p.add_argument("--degree-bins", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_command)
