"""Encoders: ID embedding tables plus an optional tower or graph propagation, no loss inside.

Every encoder owns ``user_emb`` and ``item_emb`` (``nn.Embedding``), the tables that PRISM
initialisation and full-table weight decay act on. ``forward()`` returns outputs for all users and
items (evaluation); ``encode(users, items)`` returns outputs for the given ids only (training).

Behaviour follows the released PRISM code (snap-research/PRISM:models.py, read for reference, not
copied), except where docs/paper-vs-code.md says otherwise:

* ``mf``: the embedding rows themselves (released: ``--model MLP --num_layers 0``).
* ``nlmf``: per side Linear(d, d) -> ReLU -> Linear(d, d). The paper says "two MLP layers with
  ReLU"; the released ``MLPEncoder.forward`` calls ``self.act(x)`` without using the result, so no
  activation is applied and the tower is affine. ``relu=False`` reproduces the released behaviour.
* ``lightgcn``: three ``LGConv(normalize=False)`` layers over the symmetric-normalised bipartite
  adjacency of the *whole* training graph, output = mean of layers 0..3 (He et al. 2020;
  gusye1234/LightGCN-PyTorch:code/model.py). The released code propagates over each batch's
  3-hop ``LinkNeighborLoader`` subgraph, so its boundary nodes see subgraph degrees; we use the
  exact full-graph model. The layers are one autograd function: the map
  x -> (x + Ax + A^2x + A^3x)/4 is symmetric, so its backward is the same map on the gradient
  (three more products, no intermediate layer stored), each product a CSR product
  (:func:`prism_repro.kernels.csr_matmul`, the fastest measured on CPU) over a graph built once.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from prism_repro import registry
from prism_repro.kernels import csr_matmul


def unseeded(module_cls, *args, **kwargs) -> nn.Module:
    """``module_cls(*args, **kwargs)`` with the global RNG left as it was: its parameters are set
    later by an init with its own generator. (torch's ``skip_init`` does this on the meta device,
    whose ``normal_`` imports torch._dynamo: 2-3 s of every training process.)"""
    with torch.random.fork_rng(devices=[]):
        return module_cls(*args, **kwargs)


__all__ = [
    "Encoder",
    "MatrixFactorization",
    "NonLinearMF",
    "LightGCN",
    "build_encoder",
    "normalized_bipartite_adjacency",
]


def _reset_linear_(linear: nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's default ``nn.Linear`` initialisation, but drawn from ``generator``.

    The released code keeps the default init; redoing it here only makes it reproducible
    without touching the global RNG.
    """
    nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
    if linear.bias is not None:
        bound = 1.0 / math.sqrt(linear.weight.size(1))
        nn.init.uniform_(linear.bias, -bound, bound, generator=generator)


class Encoder(nn.Module):
    """Common base: two ID tables, Xavier-uniform initialised (the paper's default init)."""

    #: ``encode`` only gathers rows of per-table outputs, so encoding a batch's repeated ids
    #: directly costs no more than encoding its distinct ids (the engine then skips the dedup)
    gathers_rows: bool = False

    def __init__(
        self, num_users: int, num_items: int, dim: int, generator: torch.Generator | None = None
    ):
        super().__init__()
        if num_users < 1 or num_items < 1 or dim < 1:
            raise ValueError(
                f"need num_users, num_items, dim >= 1, got {num_users}, {num_items}, {dim}"
            )
        self.num_users, self.num_items, self.dim = num_users, num_items, dim
        # unseeded: the default constructors would draw from the global RNG
        self.user_emb = unseeded(nn.Embedding, num_users, dim)
        self.item_emb = unseeded(nn.Embedding, num_items, dim)
        for table in (self.user_emb, self.item_emb):
            nn.init.xavier_uniform_(table.weight, generator=generator)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def encode(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    # -- evaluation hooks (defaults: rank by the dot product of the outputs) ---------------------
    def ranking_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user rows, item rows) whose dot product is the ranking score; the outputs by default.

        A model whose score is not a dot product of its outputs (MACR's counterfactual score)
        returns rows built so that it is, and the full-ranking code needs no special case.
        """
        return self.forward()

    def ranking_offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(user rows, item rows, offsets) such that setting j of :meth:`inference_options` ranks
        each user's items as u . i + offsets[j, i] does, so validation scores every setting from
        one matrix product; None (the default) when the settings are not such a family."""
        return None

    def inference_options(self) -> list[dict]:
        """Inference-time settings validation chooses among (keyword arguments of
        :meth:`set_inference`); one empty setting when there is nothing to choose."""
        return [{}]

    def set_inference(self, **setting) -> None:
        """Switch to one of :meth:`inference_options` (nothing to switch by default)."""
        if setting:
            raise TypeError(f"{type(self).__name__} has no inference settings, got {setting}")

    def set_graph(self, edges: torch.Tensor) -> None:
        """Propagate over ``edges`` from now on; encoders without a graph ignore it."""


class MatrixFactorization(Encoder):
    """Score = <e_u, e_i>; the outputs are the ID rows."""

    gathers_rows = True

    def forward(self):
        return self.user_emb.weight, self.item_emb.weight

    def encode(self, users, items):
        # index_select: its backward is one index_add into the table (embedding()'s dense
        # backward is slower on CPU), summed in a fixed order
        return self.user_emb.weight.index_select(0, users), self.item_emb.weight.index_select(
            0, items
        )


class NonLinearMF(Encoder):
    """Separate user and item towers over the ID rows (two Linear(d, d) layers with bias)."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int,
        relu: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_users, num_items, dim, generator)
        self.relu = relu
        self.user_tower = self._tower(dim, relu, generator)
        self.item_tower = self._tower(dim, relu, generator)

    @staticmethod
    def _tower(dim: int, relu: bool, generator: torch.Generator | None) -> nn.Sequential:
        first, second = unseeded(nn.Linear, dim, dim), unseeded(nn.Linear, dim, dim)
        _reset_linear_(first, generator)
        _reset_linear_(second, generator)
        # No activation after the last layer, as in the released code had its ReLU worked.
        middle = [nn.ReLU()] if relu else []
        return nn.Sequential(first, *middle, second)

    def forward(self):
        return self.user_tower(self.user_emb.weight), self.item_tower(self.item_emb.weight)

    def encode(self, users, items):
        # index_select: its backward is one index_add into the table, several times faster on
        # CPU than embedding()'s dense backward (same rows, same gradient)
        return (
            self.user_tower(self.user_emb.weight.index_select(0, users)),
            self.item_tower(self.item_emb.weight.index_select(0, items)),
        )


def normalized_bipartite_adjacency(
    edges: torch.Tensor, num_users: int, num_items: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the homogeneous user+item graph, as a sparse CSR tensor.

    Nodes 0..num_users-1 are users, num_users.. are items. Duplicate (user, item) pairs count
    once, as ``to_undirected`` + ``gcn_norm`` do in the released code. CSR because the sparse
    matrix product is several times faster than PyG's edge_index scatter path on CPU.
    """
    edges = torch.as_tensor(edges)
    if edges.dim() != 2 or edges.size(0) != 2:
        raise ValueError(f"edges must have shape (2, E), got {tuple(edges.shape)}")
    users, items = edges[0].long(), edges[1].long()
    if users.numel() and (
        users.min() < 0 or users.max() >= num_users or items.min() < 0 or items.max() >= num_items
    ):
        raise ValueError("edge ids out of range for num_users / num_items")
    pair = torch.unique(users * num_items + items)
    users, items = pair // num_items, pair % num_items + num_users
    n = num_users + num_items
    deg = torch.bincount(torch.cat([users, items]), minlength=n).to(torch.float64)
    weight = (deg[users] * deg[items]).rsqrt().to(dtype)
    index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    adj = torch.sparse_coo_tensor(
        index, torch.cat([weight, weight]), (n, n), check_invariants=False
    ).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return adj.to_sparse_csr()


class _Blocks(NamedTuple):
    """The two off-diagonal blocks of the symmetric bipartite adjacency, each as CSR:
    R (users x items) and R^T (items x users); A [x_u; x_i] = [R x_i; R^T x_u]."""

    user_crow: torch.Tensor
    user_col: torch.Tensor
    user_val: torch.Tensor
    item_crow: torch.Tensor
    item_col: torch.Tensor
    item_val: torch.Tensor

    def step(self, hu: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            csr_matmul(self.user_crow, self.user_col, self.user_val, hi),
            csr_matmul(self.item_crow, self.item_col, self.item_val, hu),
        )

    def step_rows(self, hu, hi, users, items) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows ``users`` / ``items`` (repeats allowed) of one step."""
        return (
            csr_matmul(*_csr_rows(self.user_crow, self.user_col, self.user_val, users), hi),
            csr_matmul(*_csr_rows(self.item_crow, self.item_col, self.item_val, items), hu),
        )


def _csr_rows(crow, col, val, rows):
    """Rows ``rows`` of a CSR matrix as a CSR matrix of their own, entries in the same order."""
    starts = crow[rows]
    lengths = crow[rows + 1] - starts
    sub_crow = F.pad(torch.cumsum(lengths, 0), (1, 0))
    total = int(sub_crow[-1])
    pick = torch.repeat_interleave(starts - sub_crow[:-1], lengths, output_size=total)
    pick += torch.arange(total, device=pick.device)
    return sub_crow, col[pick], val[pick]


class _Propagation(torch.autograd.Function):
    """LightGCN's layer mean (x + Ax + ... + A^L x) / (L + 1) at the requested rows.

    Forward: L - 1 full steps; the last step only for the requested rows (about a quarter of
    the adjacency's entries for a Gowalla batch of 4,096 edges), and the layer sum only there,
    added in layer order as the full computation does. Backward: the map's Jacobian
    (I + A + ... + A^L)/(L + 1) is symmetric, so the gradient, scattered to its rows, goes
    through the same map: L row-parallel products summing in a fixed order (the transposed
    product would accumulate in a thread-dependent order on CPU), no layer output kept.
    ``users``/``items`` None: every row.
    """

    @staticmethod
    def forward(ctx, user_w, item_w, users, items, blocks: _Blocks, layers: int):
        ctx.blocks, ctx.layers = blocks, layers
        ctx.shapes = (user_w.shape, item_w.shape)
        ctx.save_for_backward(users, items)
        rows = users is not None

        def pick(hu, hi):
            return (hu.index_select(0, users), hi.index_select(0, items)) if rows else (hu, hi)

        # detached: inside forward no graph is built, and embedding_bag on a weight that
        # requires grad would take its slower training path
        hu, hi = user_w.detach(), item_w.detach()
        su, si = pick(hu, hi)
        for layer in range(layers):
            if rows and layer == layers - 1:
                ou, oi = blocks.step_rows(hu, hi, users, items)
            else:
                hu, hi = blocks.step(hu, hi)
                ou, oi = pick(hu, hi)
            su, si = su + ou, si + oi
        return su / (layers + 1), si / (layers + 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u, grad_i):
        users, items = ctx.saved_tensors
        (user_shape, item_shape), layers = ctx.shapes, ctx.layers
        if users is not None:
            gu = grad_u.new_zeros(user_shape).index_add_(0, users, grad_u)
            gi = grad_i.new_zeros(item_shape).index_add_(0, items, grad_i)
        else:
            gu, gi = grad_u.contiguous(), grad_i.contiguous()
        # sums accumulate in place (in fresh tensors: autograd's gradient is not ours to change)
        tu, ti = (gu, gi) if users is not None else (gu.clone(), gi.clone())
        hu, hi = gu, gi
        for _ in range(layers):
            hu, hi = ctx.blocks.step(hu, hi)  # reads the previous layer before the sums change
            tu.add_(hu)
            ti.add_(hi)
        return tu.div_(layers + 1), ti.div_(layers + 1), None, None, None, None


class LightGCN(Encoder):
    """LightGCN over a graph fixed at construction (swap it with ``set_graph``).

    The adjacency is kept as the CSR arrays of its two blocks, plain buffers (not persistent:
    checkpoints hold only the learned tables) because a sparse CSR tensor can be neither
    deep-copied nor saved in a state_dict; the products read them directly, nothing is rebuilt
    per batch. ``encode`` propagates only what the requested rows need (see ``_Propagation``).
    """

    gathers_rows = True

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int,
        train_edges: torch.Tensor,
        num_layers: int = 3,
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_users, num_items, dim, generator)
        self.num_layers = num_layers
        for name in _Blocks._fields:
            kind = torch.long if not name.endswith("val") else torch.float32
            self.register_buffer(f"_{name}", torch.empty(0, dtype=kind), persistent=False)
        self.set_graph(train_edges)

    def set_graph(self, edges: torch.Tensor) -> None:
        """Propagate over ``edges`` from now on (released code: train+val edges at test time).

        The weights take the tables' current dtype and device.
        """
        weight = self.user_emb.weight
        adj = normalized_bipartite_adjacency(
            edges.cpu(), self.num_users, self.num_items, dtype=weight.dtype
        )
        crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
        nu, split = self.num_users, int(crow[self.num_users])  # user rows hold item columns
        blocks = _Blocks(
            crow[: nu + 1].clone(),
            col[:split] - nu,
            val[:split].clone(),
            crow[nu:] - split,
            col[split:].clone(),
            val[split:].clone(),
        )
        for name, value in zip(_Blocks._fields, blocks):
            setattr(self, f"_{name}", value.to(weight.device))

    def _blocks(self) -> _Blocks:
        return _Blocks(*(getattr(self, f"_{name}") for name in _Blocks._fields))

    def adjacency(self) -> torch.Tensor:
        """The whole propagation graph as one sparse CSR tensor (built from the blocks)."""
        b, n = self._blocks(), self.num_users + self.num_items
        crow = torch.cat([b.user_crow, b.item_crow[1:] + b.user_crow[-1]])
        col = torch.cat([b.user_col + self.num_users, b.item_col])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                crow, col, torch.cat([b.user_val, b.item_val]), (n, n), check_invariants=False
            )

    def forward(self):
        return _Propagation.apply(
            self.user_emb.weight, self.item_emb.weight, None, None, self._blocks(), self.num_layers
        )

    def encode(self, users, items):
        return _Propagation.apply(
            self.user_emb.weight,
            self.item_emb.weight,
            users,
            items,
            self._blocks(),
            self.num_layers,
        )


def build_encoder(
    name: str,
    num_users: int,
    num_items: int,
    dim: int,
    train_edges: torch.Tensor | None = None,
    relu: bool = True,
    generator: torch.Generator | None = None,
) -> Encoder:
    """Build a registered encoder (prism_repro.registry.BACKBONES); each class takes the options
    it knows: ``relu`` (nlmf), ``train_edges`` (lightgcn), ``generator`` (all)."""
    if name not in registry.BACKBONES:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(registry.BACKBONES)}")
    cls = registry.resolve(registry.BACKBONES[name].builder)
    accepted = inspect.signature(cls).parameters
    options = {"train_edges": train_edges, "relu": relu, "generator": generator}
    if "train_edges" in accepted and train_edges is None:
        raise ValueError(f"{name} needs train_edges, a (2, E) tensor of [user ids; item ids]")
    return cls(num_users, num_items, dim, **{k: v for k, v in options.items() if k in accepted})
