"""Embedding tables: the plain (non-GNN) :class:`~gnnlm.kge.model.Representation`."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnlm.kge.model import Representation
from gnnlm.utils.registry import DottedPathResolver

Initializer = Callable[[Tensor], None]


class _SparseGather(torch.autograd.Function):
    """``weight[ids]`` whose gradient for ``weight`` is a coalesced sparse COO tensor over the unique ids.

    What ``F.embedding(ids, weight, sparse=True)`` computes, except that the repeated ids' gradients are
    summed here, once (``index_add_`` into ``[u, d]``), so that the optimizer needs no ``coalesce``.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, ids: Tensor, rows: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(rows, inverse)
        ctx.shape = weight.shape
        return weight.index_select(0, ids)  # [n, d]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        rows, inverse = ctx.saved_tensors
        values = grad.new_zeros(len(rows), grad.shape[-1]).index_add_(0, inverse, grad)  # [u, d]
        sparse = torch.sparse_coo_tensor(
            rows[None], values, ctx.shape, is_coalesced=True, check_invariants=False
        )
        return sparse, None, None, None


def sparse_gather(weight: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """``(weight[ids] [n, d], unique ids [u])`` with a coalesced row-sparse gradient for ``weight``."""
    rows, inverse = torch.unique(ids, return_inverse=True)  # [u] sorted, [n]
    return _SparseGather.apply(weight, ids, rows, inverse), rows


class EmbeddingRepresentation(Representation):
    """One free vector per entity and per relation (``nn.Embedding`` tables).

    Args:
        num_entities: number of entities.
        num_relations: number of relations (twice the KG's for a reciprocal model).
        embedding_dim: base width ``d``.
        entity_dim_factor: entity width is ``entity_dim_factor * d`` (2 for complex-valued models).
        relation_dim_factor: relation width is ``relation_dim_factor * d``.
        entity_dim: explicit entity width (overrides ``entity_dim_factor``).
        relation_dim: explicit relation width (overrides ``relation_dim_factor``; TuckER's ``d_r``).
        entity_initializer: in-place init of the ``[num_entities, d_e]`` weight (default Xavier normal).
        relation_initializer: in-place init of the ``[num_relations, d_r]`` weight (default Xavier normal).
        entity_constrainer: in-place projection of the entity weight applied after init and by
            :meth:`post_step` (e.g. TransE's unit norm), or ``None``.

    Rows are gathered one by one (:meth:`gather`); with ``sparse=True`` the tables get row-sparse
    gradients (``F.embedding(..., sparse=True)``), which a sparse optimizer turns into updates of those
    rows only. :meth:`post_step` then constrains only the entity rows gathered with ``sparse=True``
    since the last call (the only rows a sparse update can have moved); otherwise (nothing gathered
    sparsely, or the table also used whole with gradients on) it constrains the whole table.
    """

    supports_row_gather: ClassVar[bool] = True

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int,
        *,
        entity_dim_factor: int = 1,
        relation_dim_factor: int = 1,
        entity_dim: int | None = None,
        relation_dim: int | None = None,
        entity_initializer: Initializer | None = None,
        relation_initializer: Initializer | None = None,
        entity_constrainer: Initializer | None = None,
    ) -> None:
        super().__init__()
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.embedding_dim = embedding_dim
        self.entity = nn.Embedding(num_entities, entity_dim or entity_dim_factor * embedding_dim)
        self.relation = nn.Embedding(
            num_relations, relation_dim or relation_dim_factor * embedding_dim
        )
        self.entity_initializer = entity_initializer or nn.init.xavier_normal_
        self.relation_initializer = relation_initializer or nn.init.xavier_normal_
        self.entity_constrainer = entity_constrainer
        # Entity ids gathered sparsely since the last post_step, and whether the table was used whole.
        self._sparse_rows: list[Tensor] = []
        self._dense_used = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.entity_initializer(self.entity.weight)
            self.relation_initializer(self.relation.weight)
        self.post_step()

    def forward(self) -> tuple[Tensor, Tensor]:
        """``(entity [num_entities, d_e], relation [num_relations, d_r])``: the weights themselves."""
        if torch.is_grad_enabled():
            self._dense_used = True  # a dense step may move every row
        return self.entity.weight, self.relation.weight

    def gather(
        self, entities: Tensor, relations: Tensor, *, sparse: bool = False
    ) -> tuple[Tensor, Tensor]:
        """``entities: [n] -> [n, d_e]``, ``relations: [m] -> [m, d_r]``, reading only those rows.

        With ``sparse=True`` the weights' gradients are sparse COO tensors holding only these rows.
        """
        if not sparse:
            if torch.is_grad_enabled():
                self._dense_used = True
            return F.embedding(entities, self.entity.weight), F.embedding(
                relations, self.relation.weight
            )
        ent, rows = sparse_gather(self.entity.weight, entities)  # [n, d_e], [u]
        rel, _ = sparse_gather(self.relation.weight, relations)  # [m, d_r]
        if torch.is_grad_enabled() and not self._dense_used:
            self._sparse_rows.append(rows)
            if sum(len(ids) for ids in self._sparse_rows) > self.num_entities:
                self._sparse_rows, self._dense_used = [], True  # cheaper as a whole table
        return ent, rel

    def post_step(self) -> None:
        touched, dense = self._sparse_rows, self._dense_used
        self._sparse_rows, self._dense_used = [], False
        if self.entity_constrainer is None:
            return
        with torch.no_grad():
            if dense or not touched:
                self.entity_constrainer(self.entity.weight)
            else:
                rows = touched[0] if len(touched) == 1 else torch.unique(torch.cat(touched))  # [u]
                block = self.entity.weight.index_select(0, rows)  # [u, d_e]
                self.entity_constrainer(block)
                self.entity.weight.index_copy_(0, rows, block)

    def extra_repr(self) -> str:
        return (
            f"num_entities={self.num_entities}, num_relations={self.num_relations}, "
            f"entity_dim={self.entity.embedding_dim}, relation_dim={self.relation.embedding_dim}"
        )


#: Embedding tables by name (``embedding``; ``memmap`` once :mod:`gnnlm.kge.mmap` is imported).
representation_resolver: DottedPathResolver[Representation] = DottedPathResolver(
    [EmbeddingRepresentation], base=Representation, suffix="Representation"
)
