"""K :class:`~trainables.models.predictor.GraphPredictor` s of one architecture as one module of stacked weights.

Every entry ``name`` of the predictors' state dicts (shape ``s``) becomes one tensor of shape
``(K, *s)`` (parameters stay parameters, buffers stay buffers), so one kernel per layer serves
all K trials, and an optimizer over the stacked tensors is exactly K independent optimizers
whenever its update is elementwise (Adam is). The forward pass computes, for each trial ``k``
and on its own nodes only, the function of :mod:`trainables.models.gnn` with ``theta_k``:

* embeddings: ``X1_k[atom] + X2_k[chirality]`` (row gathers from the flattened ``(K*V, d)``
  tables, see :func:`gather_rows`);
* per-trial linear maps: ``torch.baddbmm(b_k, h_k, W_k^T)`` over ``h`` viewed ``(K, S, d_in)``;
* message passing: one gather and one ``index_add`` over the real edges of every trial at once
  (edges never cross trials) summed onto the self-loop term, the bond embeddings through a
  per-node count of bond kinds (see :meth:`StackedPredictors._edge_weights`);
* BatchNorm: per-trial statistics over the trial's real nodes (masked mean and biased variance
  for normalisation, unbiased variance for the running estimate, momentum 0.1 as
  ``nn.BatchNorm1d``);
* dropout: each trial draws its mask from its own generator, in the shape and order the unfused
  model would (so on CPU a fused trial reproduces its unfused run exactly), or, where one
  generator is given for the group, one draw covers every trial; the mask is applied inside the
  normalisation (BatchNorm, ReLU and dropout are one elementwise chain, one kernel when compiled).

GIN, GCN, GraphSAGE and GAT layers fuse. GAT's attention is decomposed so that no per-edge
vector of width ``d`` is built for the scores (see :meth:`StackedPredictors._gat_conv`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import softmax

from trainables.core.engine import CSR_GNN_TYPES, EngineOptions
from trainables.data.vocabulary import NUM_BOND_DIRECTIONS, NUM_BOND_TYPES, SELF_LOOP_BOND_TYPE
from trainables.models.gnn import GNNShape, scatter_sum
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.batching import FusedBatch

FUSABLE_GNN_TYPES = ("gin", "gcn", "graphsage", "gat")
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
GAT_NEGATIVE_SLOPE = 0.2  # LeakyReLU of the attention scores, as trainables.models.gnn.GATConv
BOND_PAIRS = NUM_BOND_TYPES * NUM_BOND_DIRECTIONS  # (bond type, direction) pairs: 18
SELF_LOOP_PAIR = SELF_LOOP_BOND_TYPE * NUM_BOND_DIRECTIONS  # self-loops: (4, 0)


DROPOUT_DRAWS = ("per-layer", "per-step")  # how often each trial's own generator is drawn from (see _DropoutMasks)


class FusionError(ValueError):
    """Models or trials that cannot share a fused group."""


@dataclass
class FusedOutput:
    node: torch.Tensor  # (K*S, d) last layer's node states (padding slots hold garbage)
    graph: torch.Tensor  # (K, G, d) mean-pooled graph states
    logits: torch.Tensor  # (K, G, T) head outputs
    last_conv: torch.Tensor | None = None  # (K*S, d) the last layer's convolution output, before its BatchNorm


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 2-D ``table`` ``(R, d)`` and ``index`` ``(N,)`` -> ``(N, d)``.

    The same rows as ``table.index_select(0, index)``; the difference is the backward pass. Where
    few rows take many gathers (an atom table whose carbon row serves most nodes of every trial)
    ``index_select``'s backward is an ``index_add`` whose atomic adds all queue on those rows;
    ``F.embedding``'s backward on a GPU sorts the indices and sums each row's segment instead.
    """
    return F.embedding(index, table)


def _attribute(name: str) -> str:
    return name.replace(".", "__")


class StackedPredictors(nn.Module):
    """Stacked weights of K predictors; ``forward(batch)`` returns logits ``(K, G, T)``."""

    def __init__(
        self,
        models: Sequence[GraphPredictor],
        compile_normalisation: bool = False,
        aggregation: str = "scatter",
        dropout_draws: str = "per-layer",
    ):
        """``compile_normalisation``: run the training-mode BatchNorm + ReLU + dropout mask through
        ``torch.compile`` (one generated kernel chain instead of about ten passes over the
        activations; the same function up to the order of floating-point sums).

        ``aggregation``: ``"scatter"`` sums messages with a gather of the source rows and an
        ``index_add`` (atomic adds on a GPU) into the destinations; ``"csr"`` multiplies by the
        batch's weighted adjacency ``A`` (destination x source, compressed sparse rows, built on
        the device by sorting the edges) in the forward pass and by ``A^T`` in the backward pass,
        with no per-edge intermediate. The same sums, in another order.

        ``dropout_draws``: with one dropout generator per trial, ``"per-layer"`` (each layer's mask
        drawn as the unfused run draws it) or ``"per-step"`` (all layers' masks in one draw per
        trial and step); see :class:`_DropoutMasks`."""
        super().__init__()
        if aggregation not in EngineOptions.choices("aggregation"):
            raise FusionError(
                f"aggregation {aggregation!r}; accepted: {', '.join(EngineOptions.choices('aggregation'))}"
            )
        if dropout_draws not in DROPOUT_DRAWS:
            raise FusionError(f"dropout_draws {dropout_draws!r}; accepted: {', '.join(DROPOUT_DRAWS)}")
        self.aggregation, self.dropout_draws = aggregation, dropout_draws
        self._train_norm = torch.compile(self._normalise, dynamic=True) if compile_normalisation else self._normalise
        if not models:
            raise FusionError("a fused group needs at least one model")
        first = models[0]
        self.shape: GNNShape = first.gnn.shape
        if self.shape.gnn_type not in FUSABLE_GNN_TYPES:
            raise FusionError(
                f"gnn_type {self.shape.gnn_type!r} does not fuse; fusable: {', '.join(FUSABLE_GNN_TYPES)}"
            )
        layouts = {(m.gnn.shape, tuple((k, tuple(v.shape)) for k, v in m.state_dict().items())) for m in models}
        if len(layouts) != 1:
            raise FusionError("the models of a fused group must share one architecture and head size")
        if self.shape.gnn_type not in CSR_GNN_TYPES and aggregation != "scatter":
            raise FusionError(
                f"aggregation {aggregation!r} does not apply to {self.shape.gnn_type.upper()} (its "
                f"message weights are new in every layer); accepted for it: scatter; csr applies to "
                f"{', '.join(CSR_GNN_TYPES)}"
            )
        self.num_trials = len(models)
        self.state_names = list(first.state_dict())
        parameter_names = {name for name, _ in first.named_parameters()}
        states = [m.state_dict() for m in models]
        for name in self.state_names:
            stacked = torch.stack([state[name].detach() for state in states]).clone()
            if name in parameter_names:
                self.register_parameter(_attribute(name), nn.Parameter(stacked))
            else:
                self.register_buffer(_attribute(name), stacked)

    # ----------------------------------------------------------------- state

    def stacked(self, name: str) -> torch.Tensor:
        """The ``(K, *shape)`` tensor of state-dict entry ``name``."""
        return getattr(self, _attribute(name))

    def stacked_state(self) -> dict[str, torch.Tensor]:
        return {name: self.stacked(name) for name in self.state_names}

    def trial_state(self, k: int, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Trial ``k``'s state dict in :class:`GraphPredictor` layout, copied to the CPU."""
        state = self.stacked_state() if state is None else state
        return {name: state[name][k].detach().to("cpu", copy=True) for name in self.state_names}

    # ----------------------------------------------------------------- forward

    def forward(
        self,
        batch: FusedBatch,
        training: bool,
        dropout_generators: Sequence[torch.Generator] | torch.Generator | None = None,
    ) -> FusedOutput:
        if batch.num_trials != self.num_trials:
            raise FusionError(f"batch of {batch.num_trials} trials for a group of {self.num_trials}")
        K, G = batch.num_trials, batch.graphs
        dtype = self.stacked("gnn.x_embedding1.weight").dtype
        h = self._embed("gnn.x_embedding1.weight", batch.slot_trial, batch.x[:, 0]) + self._embed(
            "gnn.x_embedding2.weight", batch.slot_trial, batch.x[:, 1]
        )
        if self.shape.gnn_type == "gat":
            edges = _with_self_loops(batch)
            conv = lambda layer, h: self._gat_conv(layer, h, batch, edges)  # noqa: E731
        else:
            edge_weight, bond_mix = self._edge_weights(batch, dtype)
            aggregate = (
                _csr_aggregator(batch, edge_weight, dtype)
                if self.aggregation == "csr"
                else _scatter_aggregator(batch, edge_weight)
            )
            conv = lambda layer, h: self._conv(layer, h, batch, aggregate, bond_mix, edge_weight is None)  # noqa: E731
        last = self.shape.num_layers - 1
        masks = (
            _DropoutMasks(self.shape.dropout, self.shape.num_layers, batch, dropout_generators, self.dropout_draws)
            if training and self.shape.dropout > 0
            else None
        )
        last_conv = None
        for layer in range(self.shape.num_layers):
            h = conv(layer, h)
            if layer == last:
                last_conv = h
            # the dropout mask is drawn before the normalisation it is applied with (no other draw in between)
            noise = None if masks is None else masks.draw(layer, h)
            h = self._batch_norm(layer, h, batch, training, relu=layer != last, noise=noise)
        pooled = scatter_sum(h, batch.node_graph, K * G + 1)[: K * G] / batch.graph_count.clamp(min=1).unsqueeze(-1)
        return FusedOutput(
            node=h,
            graph=pooled.view(K, G, -1),
            logits=self._linear(pooled, "graph_pred_linear", K).view(K, G, -1),
            last_conv=last_conv,
        )

    def _embed(self, name: str, trial: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        table = self.stacked(name)  # (K, V, d)
        return gather_rows(table.reshape(-1, table.shape[-1]), trial * table.shape[1] + index)

    def _linear(self, h: torch.Tensor, prefix: str, K: int) -> torch.Tensor:
        """``h_k W_k^T + b_k`` per trial; ``h`` is ``(K*S, d_in)`` -> ``(K*S, d_out)``."""
        weight, bias = self.stacked(f"{prefix}.weight"), self.stacked(f"{prefix}.bias")
        out = torch.baddbmm(bias.unsqueeze(1), h.view(K, -1, h.shape[-1]), weight.transpose(1, 2))
        return out.view(-1, weight.shape[1])

    def _edge_weights(self, batch: FusedBatch, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Per-edge message weights ``(E,)`` (None: all 1) and the bond mix ``(K, S, 18)``.

        Every layer adds, at node ``v``, ``sum_{u -> v} w_uv e_uv`` over its in-edges and self-loop,
        where ``e_uv`` depends only on the edge's (bond type, direction) pair: that sum is
        ``M_v . T`` with ``M_v`` the weighted count of each of the 18 pairs at ``v`` (the bond mix,
        the same in every layer) and ``T`` the layer's ``(18, d)`` table ``E1[b] + E2[r]``. So no
        layer gathers an embedding per edge. Weights: GCN ``deg(u)^-1/2 deg(v)^-1/2`` (degrees
        count outgoing edges plus the self-loop, as the reference); GraphSAGE ``1 / (in-degree + 1)``
        (the mean); GIN 1.
        """
        K, S = batch.num_trials, batch.slots
        src, dst = batch.edge_src, batch.edge_dst
        pair = batch.edge_attr[:, 0] * NUM_BOND_DIRECTIONS + batch.edge_attr[:, 1]
        ones = torch.ones(K * S, dtype=dtype, device=src.device)
        if self.shape.gnn_type == "gcn":
            inv_sqrt = (ones.index_add(0, src, torch.ones_like(src, dtype=dtype))).pow(-0.5)
            edge_weight, loop_weight = inv_sqrt[src] * inv_sqrt[dst], inv_sqrt.pow(2)
        elif self.shape.gnn_type == "graphsage":
            loop_weight = 1.0 / ones.index_add(0, dst, torch.ones_like(dst, dtype=dtype))
            edge_weight = loop_weight[dst]
        else:
            edge_weight, loop_weight = None, ones
        mix = torch.zeros(K * S * BOND_PAIRS, dtype=dtype, device=src.device)
        mix.index_add_(
            0, dst * BOND_PAIRS + pair, torch.ones_like(dst, dtype=dtype) if edge_weight is None else edge_weight
        )
        mix.view(K * S, BOND_PAIRS)[:, SELF_LOOP_PAIR] += loop_weight
        return edge_weight, mix.view(K, S, BOND_PAIRS)

    def _conv(
        self, layer: int, h: torch.Tensor, batch: FusedBatch, aggregate, bond_mix: torch.Tensor, unweighted: bool
    ) -> torch.Tensor:
        """One message-passing layer for all trials; ``h`` ``(K*S, d)`` -> ``(K*S, d)``.

        ``sum_u w_uv x_u`` over in-edges (``aggregate``, summed onto the self-loop term
        ``w_vv x_v``) plus the bond term ``bond_mix @ T`` (see :meth:`_edge_weights`; one
        ``baddbmm`` adds it); ``x`` is ``h`` for GIN (then the MLP), ``W h + b`` for GCN and
        GraphSAGE (then an L2 norm). Each sum and product is its own pass over ``(K*S, d)``, so
        folding the three terms into two passes saves two of them per layer.
        """
        prefix = f"gnn.gnns.{layer}"
        K, S = batch.num_trials, batch.slots
        x = h if self.shape.gnn_type == "gin" else self._linear(h, f"{prefix}.linear", K)
        self_term = x if unweighted else x * bond_mix[..., SELF_LOOP_PAIR].reshape(K * S, 1)
        # messages summed onto the self-loop term, then the bond term added by the same product that makes it
        aggregated = torch.baddbmm(aggregate(x, self_term).view(K, S, -1), bond_mix, self._bond_table(prefix, K)).view(
            K * S, -1
        )
        if self.shape.gnn_type == "gin":
            return self._linear(F.relu(self._linear(aggregated, f"{prefix}.mlp.0", K)), f"{prefix}.mlp.2", K)
        if self.shape.gnn_type == "graphsage":
            return F.normalize(aggregated, p=2, dim=-1)
        return aggregated

    def _bond_table(self, prefix: str, K: int) -> torch.Tensor:
        """The layer's ``(K, 18, w)`` table ``E1[b] + E2[r]`` of every (bond type, direction) pair."""
        bond = self.stacked(f"{prefix}.edge_embedding1.weight")  # (K, 6, w)
        direction = self.stacked(f"{prefix}.edge_embedding2.weight")  # (K, 3, w)
        return (bond.unsqueeze(2) + direction.unsqueeze(1)).reshape(K, BOND_PAIRS, -1)

    def _gat_conv(self, layer: int, h: torch.Tensor, batch: FusedBatch, edges: _Edges) -> torch.Tensor:
        """One GAT layer for all trials; ``h`` ``(K*S, d)`` -> ``(K*S, d)``.

        With ``w_u = W h_u`` split into H heads ``(H, d)``, ``T`` the bond table and ``att^k = [a^k || b^k]``,
        the reference score ``att^k . [w_v || w_u + T[p_uv]]`` is a sum of three gathers,
        ``s_uv = a . w_v + b . w_u + b . T[p_uv]``, so scores cost ``(E, H)`` and no ``(E, H, 2d)``
        concatenation is built. After ``alpha = softmax_u(LeakyReLU_0.2(s))`` over each node's
        in-edges and self-loop, the message sum splits the same way::

            sum_u alpha_uv (w_u + T[p_uv]) = sum_u alpha_uv w_u  +  sum_p (sum_{u: p_uv = p} alpha_uv) T[p]

        the second term a per-node, per-head mix of the 18 bond pairs times the table; the output
        is the mean over heads plus the bias.
        """
        prefix = f"gnn.gnns.{layer}"
        K, S = batch.num_trials, batch.slots
        att = self.stacked(f"{prefix}.att")  # (K, 1, H, 2d)
        heads, width = att.shape[2], h.shape[-1]
        att_target, att_message = att[..., :width], att[..., width:]  # (K, 1, H, d) each
        projected = self._linear(h, f"{prefix}.weight_linear", K).view(K, S, heads, width)
        table = self._bond_table(prefix, K).view(K, BOND_PAIRS, heads, width)
        score_target = (projected * att_target).sum(-1).view(K * S, heads)
        score_source = (projected * att_message).sum(-1).view(K * S, heads)
        score_bond = (table * att_message).sum(-1).view(K * BOND_PAIRS, heads)
        score = (
            score_target.index_select(0, edges.dst)
            + score_source.index_select(0, edges.src)
            + gather_rows(score_bond, edges.trial_pair)
        )
        alpha = softmax(F.leaky_relu(score, GAT_NEGATIVE_SLOPE), edges.dst, num_nodes=K * S)  # (E', H)
        projected = projected.view(K * S, heads, width)
        node_term = scatter_sum(projected.index_select(0, edges.src) * alpha.unsqueeze(-1), edges.dst, K * S)
        mix = torch.zeros(K * S * heads * BOND_PAIRS, dtype=alpha.dtype, device=alpha.device)
        mix.index_add_(
            0,
            ((edges.dst * heads).unsqueeze(1) + torch.arange(heads, device=alpha.device))
            .mul(BOND_PAIRS)
            .add(edges.pair.unsqueeze(1))
            .reshape(-1),
            alpha.reshape(-1),
        )
        mix = mix.view(K, S, heads, BOND_PAIRS).transpose(1, 2)  # (K, H, S, 18)
        bond_term = torch.matmul(mix, table.permute(0, 2, 1, 3)).transpose(1, 2)  # (K, S, H, d)
        out = (node_term.view(K, S, heads, width) + bond_term).mean(2)
        return (out + self.stacked(f"{prefix}.bias").unsqueeze(1)).view(K * S, width)

    def _batch_norm(
        self,
        layer: int,
        h: torch.Tensor,
        batch: FusedBatch,
        training: bool,
        relu: bool,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-trial BatchNorm (then ReLU where ``relu``, then times the dropout ``noise`` where given);
        ``h`` and ``noise`` ``(K*S, d)``."""
        prefix = f"gnn.batch_norms.{layer}"
        K = batch.num_trials
        weight, bias = self.stacked(f"{prefix}.weight").unsqueeze(1), self.stacked(f"{prefix}.bias").unsqueeze(1)
        h3 = h.view(K, -1, h.shape[-1])
        running_mean, running_var = self.stacked(f"{prefix}.running_mean"), self.stacked(f"{prefix}.running_var")
        if not training:
            scale = torch.rsqrt(running_var.unsqueeze(1) + BN_EPS) * weight
            out = torch.addcmul(bias, h3 - running_mean.unsqueeze(1), scale)
            return (F.relu(out) if relu else out).view_as(h)
        count = batch.node_count.view(K, 1, 1).to(h.dtype)
        out, mean, var = self._train_norm(
            h3,
            batch.node_mask.unsqueeze(-1).to(h.dtype),
            count,
            weight,
            bias,
            relu,
            None if noise is None else noise.view_as(h3),
        )
        with torch.no_grad():
            unbiased = var * count / (count - 1).clamp(min=1)
            running_mean.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean.detach().squeeze(1))
            running_var.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * unbiased.detach().squeeze(1))
            self.stacked(f"{prefix}.num_batches_tracked").add_(1)
        return out.view_as(h)

    @staticmethod
    def _normalise(
        h3: torch.Tensor,
        mask: torch.Tensor,
        count: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        relu: bool,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training-mode BatchNorm over each trial's real nodes (then ReLU, then dropout's scaled mask
        ``noise`` ``(K, S, d)``): ``(out, mean_k, var_k)``.

        ``h3 (K, S, d)``, ``mask (K, S, 1)`` (1 on real nodes), ``count (K, 1, 1)``:
        ``mean_k = sum_s mask h3 / n_k`` and the biased ``var_k = sum_s mask (h3 - mean_k)^2 / n_k``
        (what ``nn.BatchNorm1d`` normalises with), as masked reductions over the slot axis: plain
        elementwise products and sums, which ``torch.compile`` fuses into one reduction kernel each
        (a batched ``(1, S) @ (S, d)`` product per trial would be a matrix-vector call per trial).
        Compiled, applying the dropout mask joins the same elementwise kernel, forward and backward.
        """
        mean = (h3 * mask).sum(1, keepdim=True) / count
        centered = h3 - mean
        var = (centered * centered * mask).sum(1, keepdim=True) / count
        out = torch.addcmul(bias, centered, torch.rsqrt(var + BN_EPS) * weight)
        out = F.relu(out) if relu else out
        return (out if noise is None else out * noise), mean, var


class _DropoutMasks:
    """Inverted dropout's scaled masks (0 or ``1 / (1 - p)``) for one training forward pass.

    ``generators`` is one generator for the whole group or one per trial:

    * one for the group: each layer draws one ``(K*S, d)`` mask (one kernel); a trial's masks
      then depend on the group it trains in, not on its seed alone;
    * one per trial, ``draws="per-layer"``: at each layer trial ``k``'s mask ``(n_k, d)`` comes from
      ``generators[k]``, in the shape and order of its unfused run (on the CPU exactly its
      unfused masks): K draws per layer;
    * one per trial, ``draws="per-step"``: at the first layer trial ``k``'s masks for every layer,
      ``(L, n_k, d)``, come from ``generators[k]`` in one draw: K draws per step instead of K x L.
      A trial's masks still depend on its own generator and mini-batch only, not on its group,
      but they are not the masks its unfused run draws.
    """

    def __init__(
        self,
        p: float,
        num_layers: int,
        batch: FusedBatch,
        generators: Sequence[torch.Generator] | torch.Generator | None,
        draws: str,
    ):
        if not isinstance(generators, torch.Generator) and (generators is None or len(generators) != batch.num_trials):
            raise FusionError("training a fused model needs one dropout generator per trial, or one for the group")
        self.keep, self.num_layers, self.batch = 1.0 - p, num_layers, batch
        self.generators, self.draws = generators, draws
        self.block: torch.Tensor | None = None  # per-step: every layer's masks, (L, K*S, d)

    def draw(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s mask for activations shaped like ``h`` ``(K*S, d)``."""
        if isinstance(self.generators, torch.Generator):
            return torch.empty_like(h).bernoulli_(self.keep, generator=self.generators).div_(self.keep)
        if self.draws == "per-layer":
            return self._per_trial(torch.zeros_like(h), dim=0)
        if self.block is None:
            self.block = self._per_trial(h.new_zeros((self.num_layers, *h.shape)), dim=1)
        return self.block[layer]

    def _per_trial(self, target: torch.Tensor, dim: int) -> torch.Tensor:
        """Fill each trial's real slots of ``target`` (slot axis ``dim``) from its own generator."""
        S = self.batch.slots
        for k, (rows, generator) in enumerate(zip(self.batch.nodes_per_trial, self.generators)):
            target.narrow(dim, k * S, rows).bernoulli_(self.keep, generator=generator)
        return target.div_(self.keep)


@dataclass
class _Edges:
    """A fused batch's edges plus one self-loop per slot: ``src, dst, pair`` ``(E',)`` and
    ``trial_pair = trial(dst) * 18 + pair`` (the row of the flattened ``(K*18, .)`` bond tables)."""

    src: torch.Tensor
    dst: torch.Tensor
    pair: torch.Tensor
    trial_pair: torch.Tensor


def _with_self_loops(batch: FusedBatch) -> _Edges:
    slots = torch.arange(batch.num_trials * batch.slots, device=batch.edge_src.device)
    pair = batch.edge_attr[:, 0] * NUM_BOND_DIRECTIONS + batch.edge_attr[:, 1]
    src, dst = torch.cat([batch.edge_src, slots]), torch.cat([batch.edge_dst, slots])
    pair = torch.cat([pair, torch.full_like(slots, SELF_LOOP_PAIR)])
    return _Edges(src, dst, pair, batch.slot_trial.index_select(0, dst) * BOND_PAIRS + pair)


def _scatter_aggregator(batch: FusedBatch, edge_weight: torch.Tensor | None):
    """``(x, base) -> base_v + sum_{u -> v} w_uv x_u`` by a gather of the sources and an out-of-place
    ``index_add`` into a copy of ``base`` (no zero-filled buffer, no separate sum)."""

    def aggregate(x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        gathered = x.index_select(0, batch.edge_src)
        if edge_weight is not None:
            gathered = gathered * edge_weight.unsqueeze(-1)
        return base.index_add(0, batch.edge_dst, gathered.to(base.dtype))

    return aggregate


class _SparseProduct(torch.autograd.Function):
    """``A @ x`` with ``A^T`` given for the backward pass (``A`` is constant: no gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, adjacency: torch.Tensor, transposed: torch.Tensor) -> torch.Tensor:
        ctx.transposed = transposed
        with torch.autocast(x.device.type, enabled=False):  # in the operands' dtype, never narrowed
            return adjacency @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        with torch.autocast(grad.device.type, enabled=False):
            return ctx.transposed @ grad.to(ctx.transposed.dtype), None, None


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size x size`` CSR matrix with ``values`` at ``(rows, cols)``, built on the device
    without waiting for it (a stable sort by row, row pointers by ``searchsorted``)."""
    order = torch.argsort(rows, stable=True)
    sorted_rows = rows.index_select(0, order)
    crow = torch.searchsorted(sorted_rows, torch.arange(size + 1, device=rows.device))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow, cols.index_select(0, order), values.index_select(0, order), (size, size), check_invariants=False
        )


def _csr_aggregator(batch: FusedBatch, edge_weight: torch.Tensor | None, dtype: torch.dtype):
    """``(x, base) -> base + A x`` with ``A[v, u] = w_uv`` over the batch's edges, as a CSR product (and
    ``A^T`` backward)."""
    size = batch.num_trials * batch.slots
    values = (
        torch.ones(batch.edge_src.shape[0], dtype=dtype, device=batch.edge_src.device)
        if edge_weight is None
        else edge_weight.to(dtype)
    )
    adjacency = _csr(batch.edge_dst, batch.edge_src, values, size)
    transposed = _csr(batch.edge_src, batch.edge_dst, values, size)

    def aggregate(x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        if x.dtype != dtype:  # autocast's narrower x: the products run (and sum) in the weights' dtype
            return base + _SparseProduct.apply(x.to(dtype), adjacency, transposed).to(base.dtype)
        return base + _SparseProduct.apply(x, adjacency, transposed)

    return aggregate
