"""ConvE (Dettmers et al., 2018)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gnnlm.kge.gemm import matmul_nt
from gnnlm.kge.interaction import Interaction


class ConvE(Interaction):
    r"""ConvE: a 2D convolution over the stacked head and relation embeddings.

    .. math:: f(h, r, t) = g\big(\operatorname{vec}(g([\bar h; \bar r] * \omega)) W\big) \cdot t_{1..d}
        + b_t

    where :math:`\bar h, \bar r` are the embeddings reshaped to ``height x width`` images, :math:`*`
    is a convolution with ``num_filters`` ``kernel_size x kernel_size`` filters, :math:`g` is ReLU (after
    batch norm), and :math:`b_t` is a per-entity bias. Paper: `Convolutional 2D Knowledge Graph
    Embeddings <https://arxiv.org/abs/1707.01476>`_. Defaults are the paper's.

    The entity bias lives in the entity representation: entities are ``d + 1`` wide (the last column is
    :math:`b`; heads use the first ``d``), so any representation, a GNN included, can feed ConvE. Tail
    scoring (:meth:`score_t`) is one GEMM per query batch. The head enters non-linearly, so
    :meth:`score_h` runs the convolution for every (query, candidate) pair (chunked, slow for large
    graphs): train and evaluate ConvE with reciprocal relations, as the paper does.

    Args:
        embedding_dim: ``d``.
        embedding_height: image height; ``d`` must be divisible by it (default: the smallest divisor
            of ``d`` that is at least :math:`\sqrt d`, 20 for ``d = 200`` as in the paper).
        num_filters: convolution channels.
        kernel_size: square kernel size.
        input_dropout: dropout on the stacked image.
        feature_map_dropout: 2D dropout on the feature maps.
        hidden_dropout: dropout after the fully connected layer.
    """

    supports_gemm: ClassVar[bool] = True
    requires_embedding_dim: ClassVar[bool] = True

    def __init__(
        self,
        embedding_dim: int,
        *,
        embedding_height: int | None = None,
        num_filters: int = 32,
        kernel_size: int = 3,
        input_dropout: float = 0.2,
        feature_map_dropout: float = 0.2,
        hidden_dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if embedding_height is None:
            embedding_height = next(
                k
                for k in range(math.ceil(math.sqrt(embedding_dim)), embedding_dim + 1)
                if embedding_dim % k == 0
            )
        if embedding_dim % embedding_height:
            raise ValueError(
                f"ConvE: embedding_dim={embedding_dim} is not divisible by "
                f"embedding_height={embedding_height}"
            )
        self.embedding_dim = embedding_dim
        self.height = embedding_height
        self.width = embedding_dim // embedding_height
        if self.width < kernel_size or 2 * self.height < kernel_size:
            raise ValueError(
                f"ConvE: the {2 * self.height}x{self.width} input image is smaller than the "
                f"{kernel_size}x{kernel_size} kernel (embedding_dim={embedding_dim}, "
                f"embedding_height={embedding_height})"
            )
        self.num_filters = num_filters
        self.kernel_size = kernel_size
        out_h, out_w = 2 * self.height - kernel_size + 1, self.width - kernel_size + 1
        self.bn0 = nn.BatchNorm2d(1)
        self.conv = nn.Conv2d(1, num_filters, kernel_size)
        self.bn1 = nn.BatchNorm2d(num_filters)
        self.fc = nn.Linear(num_filters * out_h * out_w, embedding_dim)
        self.bn2 = nn.BatchNorm1d(embedding_dim)
        self.input_dropout = nn.Dropout(input_dropout)
        self.feature_map_dropout = nn.Dropout2d(feature_map_dropout)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.bn0, self.conv, self.bn1, self.fc, self.bn2):
            module.reset_parameters()

    def representation_dims(self, embedding_dim: int) -> tuple[int, int]:
        if embedding_dim != self.embedding_dim:
            raise ValueError(
                f"ConvE was built with embedding_dim={self.embedding_dim}, asked for {embedding_dim}"
            )
        return embedding_dim + 1, embedding_dim  # entities carry their bias in the last column

    def reset_entity_(self, weight: Tensor) -> None:
        nn.init.xavier_normal_(weight[:, :-1])
        nn.init.zeros_(weight[:, -1])

    def _query(self, h: Tensor, r: Tensor) -> Tensor:
        """``[M, d + 1], [M, d]`` -> ``[M, d]``: the convolutional encoding of ``(h, r)``."""
        image = torch.cat(
            [
                h[:, : self.embedding_dim].reshape(-1, 1, self.height, self.width),
                r.reshape(-1, 1, self.height, self.width),
            ],
            dim=2,
        )  # [M, 1, 2 * height, width]
        x = self.input_dropout(self.bn0(image))
        x = self.feature_map_dropout(F.relu(self.bn1(self.conv(x))))  # [M, filters, out_h, out_w]
        x = self.hidden_dropout(self.fc(x.flatten(1)))  # [M, d]
        return F.relu(self.bn2(x))

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        batch = torch.broadcast_shapes(h.shape[:-1], r.shape[:-1])
        h = h.expand(*batch, h.shape[-1]).reshape(-1, h.shape[-1])  # [M, d + 1]
        r = r.expand(*batch, r.shape[-1]).reshape(-1, r.shape[-1])  # [M, d]
        q = self._query(h, r).view(*batch, self.embedding_dim)  # (*batch, d)
        return (q * t[..., : self.embedding_dim]).sum(-1) + t[..., -1]

    def score_t(self, h: Tensor, r: Tensor, all_t: Tensor) -> Tensor:
        q = self._query(h, r)  # [B, d]
        return matmul_nt(
            torch.cat([q, q.new_ones(len(q), 1)], dim=1), all_t
        )  # [B, N], bias included

    def score_h(self, all_h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        # One convolution per (query, candidate): budget the chunk by the feature-map size, not by d.
        out_h, out_w = 2 * self.height - self.kernel_size + 1, self.width - self.kernel_size + 1
        per_candidate = max(1, len(t) * self.num_filters * out_h * out_w)
        chunk = max(1, self.max_chunk_elements // per_candidate)
        parts = [self(c[None], r[:, None], t[:, None]) for c in all_h.split(chunk)]  # [B, chunk]
        return torch.cat(parts, dim=1)  # [B, N]

    def extra_repr(self) -> str:
        return (
            f"embedding_dim={self.embedding_dim}, image={2 * self.height}x{self.width}, "
            f"num_filters={self.num_filters}, kernel_size={self.kernel_size}"
        )
