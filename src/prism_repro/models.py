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
  exact full-graph model.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings

import torch
from torch import nn
from torch.nn.utils import skip_init

from prism_repro import registry

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
        # skip_init: the default constructors would draw from the global RNG
        self.user_emb = skip_init(nn.Embedding, num_users, dim)
        self.item_emb = skip_init(nn.Embedding, num_items, dim)
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
        first, second = skip_init(nn.Linear, dim, dim), skip_init(nn.Linear, dim, dim)
        _reset_linear_(first, generator)
        _reset_linear_(second, generator)
        # No activation after the last layer, as in the released code had its ReLU worked.
        middle = [nn.ReLU()] if relu else []
        return nn.Sequential(first, *middle, second)

    def forward(self):
        return self.user_tower(self.user_emb.weight), self.item_tower(self.item_emb.weight)

    def encode(self, users, items):
        return self.user_tower(self.user_emb(users)), self.item_tower(self.item_emb(items))


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


class _SymmetricSparseProduct(torch.autograd.Function):
    """A @ x for a symmetric sparse A, with backward A @ grad instead of A^T @ grad.

    Same gradient (A = A^T), but both directions are row-parallel CSR products, which sum in a
    fixed order: the transposed product PyTorch uses otherwise accumulates in a thread-dependent
    order on CPU, so two runs with one seed drifted apart in the last bits.
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.adj @ grad


@functools.cache
def symmetric_lgconv() -> type:
    """PyG's LGConv (no normalisation inside: the adjacency is pre-normalised) with the
    deterministic symmetric product above as its message passing.

    PyG is imported here, on the first LightGCN: importing it costs a process more than importing
    torch (it loads torch._dynamo), which every MF and non-linear MF run would otherwise pay."""
    from torch_geometric.nn import LGConv

    class SymmetricLGConv(LGConv):
        def message_and_aggregate(self, adj_t, x):
            return _SymmetricSparseProduct.apply(adj_t, x)

    return SymmetricLGConv


class LightGCN(Encoder):
    """LightGCN over a graph fixed at construction (swap it with ``set_graph``).

    The CSR matrix is kept as three plain buffers (not persistent: checkpoints hold only the
    learned tables) because a sparse CSR tensor can be neither deep-copied nor saved in a
    state_dict; it is rebuilt as a view on each forward pass, which costs no copy.
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
        conv = symmetric_lgconv()
        self.convs = nn.ModuleList(conv(normalize=False) for _ in range(num_layers))
        self.register_buffer("_crow", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("_col", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("_val", torch.empty(0), persistent=False)
        self.set_graph(train_edges)

    def set_graph(self, edges: torch.Tensor) -> None:
        """Propagate over ``edges`` from now on (released code: train+val edges at test time).

        The weights take the tables' current dtype and device.
        """
        weight = self.user_emb.weight
        adj = normalized_bipartite_adjacency(
            edges.cpu(), self.num_users, self.num_items, dtype=weight.dtype
        )
        self._crow = adj.crow_indices().to(weight.device)
        self._col = adj.col_indices().to(weight.device)
        self._val = adj.values().to(weight.device)

    def adjacency(self) -> torch.Tensor:
        n = self.num_users + self.num_items
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                self._crow, self._col, self._val, (n, n), check_invariants=False
            )

    def forward(self):
        adj = self.adjacency()
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])
        total = x
        for conv in self.convs:
            x = conv(x, adj)
            total = total + x
        out = total / (self.num_layers + 1)
        return out[: self.num_users], out[self.num_users :]

    def encode(self, users, items):
        # index_select, not x[idx]: its backward sums in a fixed order (advanced indexing's
        # backward accumulates in a thread-dependent order on CPU, breaking same-seed runs)
        users_out, items_out = self.forward()
        return users_out.index_select(0, users), items_out.index_select(0, items)


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
