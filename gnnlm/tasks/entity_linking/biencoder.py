"""The bi-encoder: a mention in its context against an entity's name and description.

Both sides are encoded by the same pretrained LM (mean pooling, as sentence-transformers' MiniLM):

* mention side: the text pair ``(mention, context window)``, the window being up to ``context_chars``
  characters either side of the mention with the mention inside; the LM is fine-tuned (its top
  layers), or frozen (``model.frozen_lm``: each mention is then encoded once, as the single text
  ``"mention [SEP] context"``, cached on disk like the entity side, and only the maps train);
* entity side (frozen, computed once and cached): ``"name: description"``
  (:func:`~gnnlm.fusion.node_features.text_node_features`), then a trained linear map.

Score of mention ``m`` and candidate ``e``:

.. math::
    s(m, e) = \\tau \\cos(W_m \\bar h_m, W_e \\bar h_e) + w^\\top f(m, e)

where ``W_m`` and ``W_e`` start as the identity (a fresh model is the LM's zero-shot similarity), the
scale ``tau = exp(t)`` is learned, and ``f`` are the candidate's string-match and prior features
(:meth:`~gnnlm.tasks.entity_linking.candidates.Candidate.features`; ``w`` starts at zero). The loss is
the cross-entropy over each mention's candidates (:func:`linking_loss`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnlm.lm import TransformerBackbone, pool


class BiEncoder(nn.Module):
    """Scores of a mention's candidates (module docstring).

    Args:
        lm: the mention encoder, or ``None`` when the mentions come encoded (a frozen LM).
        entity_table: ``[num_entities, hidden]`` the LM's encodings of the entities' texts (a frozen
            buffer, not saved with the model: the task recomputes it from its cache).
        num_features: width of the candidate features.
        scale: the initial ``tau``.
    """

    def __init__(
        self,
        lm: TransformerBackbone | None,
        entity_table: Tensor,
        *,
        num_features: int,
        scale: float = 20.0,
    ) -> None:
        super().__init__()
        hidden = entity_table.size(1) if lm is None else lm.hidden_size
        if entity_table.size(1) != hidden:
            raise ValueError(
                f"entity_table has width {entity_table.size(1)}, the LM's hidden size is {hidden}"
            )
        self.lm = lm
        self.register_buffer("entity_table", entity_table.detach().float(), persistent=False)
        self.mention_map = nn.Linear(hidden, hidden)
        self.entity_map = nn.Linear(hidden, hidden)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        self.features = nn.Linear(num_features, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.mention_map, self.entity_map):
            nn.init.eye_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.features.weight)
        nn.init.zeros_(self.features.bias)

    def encode_mentions(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """``[M, seq]`` token ids of (mention, context) pairs -> ``[M, hidden]`` pooled LM states
        (before ``W_m``)."""
        if self.lm is None:
            raise ValueError("this bi-encoder has no LM (frozen_lm): pass encoded mentions")
        hidden = self.lm(input_ids, attention_mask, token_type_ids)  # [M, seq, hidden]
        return pool(hidden, attention_mask, "mean")

    def entity_vectors(self, entities: Tensor) -> Tensor:
        """``[*]`` entity ids -> ``[*, hidden]`` mapped entity encodings ``W_e h_e``."""
        return self.entity_map(self.entity_table[entities])

    def forward(self, mentions: Tensor, candidates: Tensor, features: Tensor) -> Tensor:
        """Scores of candidates.

        Args:
            mentions: ``[M, hidden]`` pooled mention encodings (:meth:`encode_mentions`).
            candidates: ``[M, K]`` entity ids.
            features: ``[M, K, num_features]`` candidate features.

        Returns:
            ``[M, K]`` scores (padding is masked by the caller).
        """
        u = F.normalize(self.mention_map(mentions), dim=-1)  # [M, hidden]
        v = F.normalize(self.entity_vectors(candidates), dim=-1)  # [M, K, hidden]
        cosine = torch.einsum("mh,mkh->mk", u, v)  # [M, K]
        return self.log_scale.exp() * cosine + self.features(features).squeeze(-1)

    def extra_repr(self) -> str:
        return f"entities={self.entity_table.size(0)}, hidden={self.entity_table.size(1)}"


def encode_texts(
    lm: TransformerBackbone, tokenizer, texts: list[str], *, max_length: int, batch_size: int = 64
) -> Tensor:
    """``[len(texts), hidden]`` mean-pooled encodings of ``texts`` without gradient (the frozen
    mention encoder of new text; the splits' mentions are encoded once and cached instead)."""
    from gnnlm.utils.modules import eval_mode

    out = []
    with eval_mode(lm), torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")  # fmt: skip
            hidden = lm(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
            out.append(pool(hidden, enc["attention_mask"], "mean").float())
    return torch.cat(out) if out else torch.zeros(0, lm.hidden_size)


def linking_loss(scores: Tensor, mask: Tensor, gold: Tensor) -> Tensor:
    """Cross-entropy of the gold candidate among each mention's candidates.

    Args:
        scores: ``[M, K]``.
        mask: ``[M, K]`` real candidates.
        gold: ``[M]`` the gold candidate's column (every mention must have one in its candidates).

    Returns:
        ``[M]`` losses.
    """
    if bool((gold < 0).any()):
        raise ValueError("linking_loss: a mention without its gold entity among its candidates")
    logits = scores.float().masked_fill(~mask, float("-inf"))  # [M, K]
    return F.cross_entropy(logits, gold, reduction="none")


__all__ = ["BiEncoder", "encode_texts", "linking_loss"]
