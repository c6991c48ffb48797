"""An architecture-agnostic view of a HuggingFace encoder, one layer at a time.

Fusion needs to run the LM's embeddings, then each transformer layer, with its own modules in between
(GreaseLM-style interleaving) and its own additive attention bias (relation injection). HF encoders differ in
where they keep their layer list (``encoder.layer`` in BERT/RoBERTa/MiniLM/ELECTRA, ``transformer.layer`` in
DistilBERT) and in what their embedding module accepts. :class:`TransformerBackbone` hides that behind
:meth:`~TransformerBackbone.embed`, :meth:`~TransformerBackbone.attention_mask` and
:meth:`~TransformerBackbone.layer_forward`, and is checked against the HF model's own ``forward`` in the
tests, so ``embed -> layer_forward x L`` reproduces ``model(input_ids, attention_mask).last_hidden_state``.

In transformers 5.x a layer's ``forward(hidden_states, attention_mask, ...)`` takes the *prepared* mask
(what ``masking_utils.create_bidirectional_mask`` returns: ``None``, a boolean ``[B, 1, S, S]`` mask for
SDPA or an additive float mask for eager attention) and returns the new hidden states (4.x returned a
tuple; both are accepted). An additive bias ``[B, heads, S, S]`` goes into the same argument as a float
mask, which eager and SDPA attention both add to the attention logits before the softmax.

This module (with :mod:`gnnlm.lm.loading`) is the only place in gnnlm that imports ``transformers``.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask

#: attention implementations that accept a float ``[B, heads, S, S]`` additive mask.
ADDITIVE_MASK_IMPLEMENTATIONS = ("eager", "sdpa")

#: where known encoders keep their layer list, tried in order before the generic search.
_LAYER_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers", "layer")


def _get_path(module: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def find_layers(model: nn.Module, num_layers: int) -> str:
    """Where an HF encoder keeps its transformer layers: the path of an ``nn.ModuleList``.

    Args:
        model: an HF base model (``AutoModel`` output).
        num_layers: ``config.num_hidden_layers``; the list found must have this length.

    Returns:
        The dotted path (``"encoder.layer"``, ``"transformer.layer"``, ...) for ``model.get_submodule``.

    Raises:
        ValueError: when no module list of that length exists.
    """
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) == num_layers:
            return path
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return name
    raise ValueError(
        f"{type(model).__name__}: found no nn.ModuleList of {num_layers} layers "
        f"(tried {', '.join(_LAYER_PATHS)} and a search of all sub-modules)"
    )


class TransformerBackbone(nn.Module):
    """A HuggingFace encoder exposed as ``embed``, ``attention_mask`` and ``layer_forward``.

    Args:
        model: an HF base model (``AutoModel.from_pretrained(...)`` or ``AutoModel.from_config(...)``);
            BERT, MiniLM, RoBERTa, XLM-R, ELECTRA, DistilBERT and other encoders whose layers take
            ``(hidden_states, attention_mask)`` work.
        name_or_path: what it was loaded from (``"minilm"``, ``"tiny-bert"``, a folder, a hub id);
            default: the HF config's ``name_or_path`` (empty for a model built from a config).

    Attributes:
        model: the wrapped HF model (its parameters are this module's ``model.*`` parameters).
        layer_path: where ``model`` keeps its layers (``"encoder.layer"``, ``"transformer.layer"``).
        name_or_path: the name :func:`~gnnlm.lm.load_tokenizer` finds its tokenizer by.
    """

    def __init__(self, model: PreTrainedModel, *, name_or_path: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.name_or_path = (
            name_or_path if name_or_path is not None else str(model.config.name_or_path or "")
        )
        config = model.config
        self.layer_path = find_layers(model, config.num_hidden_layers)
        embeddings = getattr(model, "embeddings", None)
        if not isinstance(embeddings, nn.Module):
            raise ValueError(f"{type(model).__name__} has no `embeddings` module")
        self._embedding_args = frozenset(inspect.signature(embeddings.forward).parameters)

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers, in order (not registered twice: they live under ``model``)."""
        return self.model.get_submodule(self.layer_path)

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def config(self):
        """The HF config of the wrapped model."""
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def attn_implementation(self) -> str:
        return str(self.config._attn_implementation)

    # -- the three steps ---------------------------------------------------------------------------
    def embed(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Token + position (+ segment) embeddings, as the HF model computes them.

        Args:
            input_ids: ``[batch, seq]`` token ids.
            token_type_ids: ``[batch, seq]`` segment ids, for models that have them.

        Returns:
            ``[batch, seq, hidden]`` input of the first layer.
        """
        kwargs = {"input_ids": input_ids}
        if token_type_ids is not None and "token_type_ids" in self._embedding_args:
            kwargs["token_type_ids"] = token_type_ids
        return self.model.embeddings(**kwargs)

    def attention_mask(
        self, attention_mask: Tensor, embeddings: Tensor, bias: Tensor | None = None
    ) -> Tensor | None:
        """The mask argument of :meth:`layer_forward`.

        Args:
            attention_mask: ``[batch, seq]`` 1 for real tokens, 0 for padding.
            embeddings: ``[batch, seq, hidden]`` (gives dtype and device).
            bias: optional additive attention bias ``[batch, heads or 1, seq, seq]`` added to the logits of
                real keys (padded keys stay masked out).

        Returns:
            Without ``bias``: exactly what the HF model passes to its layers. With ``bias``: a float
            ``[batch, heads, seq, seq]`` mask (``bias`` on real keys, the dtype's minimum on padding).
        """
        if bias is None:
            return create_bidirectional_mask(
                config=self.config, inputs_embeds=embeddings, attention_mask=attention_mask
            )
        if self.attn_implementation not in ADDITIVE_MASK_IMPLEMENTATIONS:
            raise ValueError(
                f"an additive attention bias needs attn_implementation in {ADDITIVE_MASK_IMPLEMENTATIONS}, "
                f"the LM uses {self.attn_implementation!r}"
            )
        keys = attention_mask.bool()[:, None, None, :]  # [batch, 1, 1, seq]
        minimum = torch.finfo(embeddings.dtype).min
        return torch.where(keys, bias.to(embeddings.dtype), minimum)  # [batch, heads, seq, seq]

    def layer_forward(self, i: int, hidden_states: Tensor, attention_mask: Tensor | None) -> Tensor:
        """Run LM layer ``i``.

        Args:
            i: layer index in ``[0, num_layers)``.
            hidden_states: ``[batch, seq, hidden]``.
            attention_mask: the output of :meth:`attention_mask`.

        Returns:
            ``[batch, seq, hidden]``.
        """
        out = self.layers[i](hidden_states, attention_mask)
        return out[0] if isinstance(out, tuple) else out

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """Plain encoding: ``[batch, seq]`` ids -> ``[batch, seq, hidden]`` last hidden state."""
        hidden = self.embed(input_ids, token_type_ids)
        mask = self.attention_mask(attention_mask, hidden)
        for i in range(self.num_layers):
            hidden = self.layer_forward(i, hidden, mask)
        return hidden

    def extra_repr(self) -> str:
        return (
            f"arch={type(self.model).__name__}, hidden={self.hidden_size}, layers={self.num_layers}, "
            f"heads={self.num_heads}, attn={self.attn_implementation}"
        )


def pool(hidden_states: Tensor, attention_mask: Tensor, mode: str = "mean") -> Tensor:
    """Sentence representation from token states.

    Args:
        hidden_states: ``[batch, seq, hidden]``.
        attention_mask: ``[batch, seq]`` 1 for real tokens.
        mode: ``"mean"`` (masked mean, what sentence-transformers' MiniLM uses) or ``"cls"`` (first token).

    Returns:
        ``[batch, hidden]``.
    """
    if mode == "cls":
        return hidden_states[:, 0]
    if mode != "mean":
        raise ValueError(f"unknown pooling {mode!r}; use 'mean' or 'cls'")
    weight = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # [batch, seq, 1]
    return (hidden_states * weight).sum(1) / weight.sum(1).clamp_min(1.0)
