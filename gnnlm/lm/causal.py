"""Decoder (causal) language models, one layer at a time: GPT-2 (learned positions) and the
Llama / Qwen2 / Mistral family (rotary positions).

:class:`CausalBackbone` wraps an ``AutoModelForCausalLM`` model and exposes the steps of its own forward:

    hidden = embed(input_ids | inputs_embeds, position_ids)     # GPT-2 adds learned positions here
    inputs = causal_inputs(attention_mask, hidden, position_ids) # causal mask(s), rotary cos/sin
    for i in layers: hidden = layer_forward(i, hidden, inputs)   # fusion modules go in between
    logits = lm_logits(hidden)                                   # final norm, then the LM head

so ``lm_logits(... layer_forward ...)`` equals ``model(input_ids, attention_mask).logits`` (tested for
GPT-2, Llama and Qwen2). The mask is HF's own ``create_causal_mask`` (and the sliding-window one for
the layers whose ``config.layer_types`` ask for it): a token never sees a later token. Generation with a
KV cache stays HF's (``model.generate``) for the plain LM; fused models decode through this loop.

It subclasses :class:`~gnnlm.lm.TransformerBackbone` so that the partial-fine-tuning strategies
(``freeze_lm_layers``, LoRA through ``peft``) find it like an encoder; the encoder's
``attention_mask`` (a bidirectional mask) is replaced by :meth:`CausalBackbone.causal_inputs`.

Tiny decoders for tests (``"tiny-gpt2"``, ``"tiny-llama"``, ``"tiny-qwen2"``) are built from a config with
random weights and use MiniLM's WordPiece tokenizer (``[SEP]`` as end of sequence); a hub id or a folder
goes to ``AutoModelForCausalLM.from_pretrained`` unchanged (the real code path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

from gnnlm.lm.backbone import TransformerBackbone, find_layers
from gnnlm.lm.loading import minilm_path

#: decoder families that ``"tiny-<arch>"`` builds from a config.
TINY_DECODERS = ("gpt2", "llama", "qwen2")
#: where decoders keep their final norm, tried in order.
_NORM_NAMES = ("ln_f", "norm", "final_layernorm", "final_layer_norm")


@dataclass
class CausalInputs:
    """What every layer of a decoder needs besides the hidden states, computed once per forward.

    Attributes:
        position_ids: ``[batch or 1, seq]`` positions of the tokens.
        masks: per layer type (``"full_attention"``, ``"sliding_attention"``), the prepared causal mask
            (``None`` when HF's attention can use ``is_causal`` itself, a ``[batch, 1, seq, seq]`` bool
            mask for SDPA, or an additive float mask for eager attention).
        position_embeddings: rotary ``(cos, sin)``, each ``[batch, seq, head_dim]``; ``None`` for
            learned positions (added in :meth:`CausalBackbone.embed`).
    """

    position_ids: Tensor
    masks: dict[str, Tensor | None]
    position_embeddings: tuple[Tensor, Tensor] | None = None


class CausalBackbone(TransformerBackbone):
    """An HF decoder (``AutoModelForCausalLM``) exposed layer by layer.

    Args:
        model: an ``AutoModelForCausalLM`` model (GPT-2, Llama, Qwen2, Mistral and other decoders whose
            base model keeps a layer list and either ``wpe`` (learned positions) or ``rotary_emb``).
        name_or_path: what it was loaded from (default: the config's ``name_or_path``).

    Attributes:
        model: the wrapped causal LM (its parameters are this module's ``model.*`` parameters).
        layer_path: where ``model`` keeps its layers (``"transformer.h"``, ``"model.layers"``).
        positions: ``"learned"`` or ``"rotary"``.
    """

    def __init__(self, model: PreTrainedModel, *, name_or_path: str | None = None) -> None:
        nn.Module.__init__(self)  # the encoder's __init__ looks for an `embeddings` module
        self.model = model
        self.name_or_path = (
            name_or_path if name_or_path is not None else str(model.config.name_or_path or "")
        )
        base = model.base_model
        prefix = model.base_model_prefix
        inner = find_layers(base, model.config.num_hidden_layers)
        self.layer_path = f"{prefix}.{inner}" if base is not model else inner
        self._base_path = prefix if base is not model else ""
        if isinstance(getattr(base, "wpe", None), nn.Module):
            self.positions = "learned"
        elif isinstance(getattr(base, "rotary_emb", None), nn.Module):
            self.positions = "rotary"
        else:
            raise ValueError(
                f"{type(model).__name__}: neither learned positions (`wpe`) nor rotary ones "
                "(`rotary_emb`) found in its base model"
            )
        self._norm_name = next(
            (n for n in _NORM_NAMES if isinstance(getattr(base, n, None), nn.Module)), None
        )
        if self._norm_name is None:
            raise ValueError(f"{type(model).__name__}: no final norm among {_NORM_NAMES}")

    @property
    def base(self) -> nn.Module:
        """The base model (``GPT2Model``, ``LlamaModel``): embeddings, layers, final norm."""
        return self.model.get_submodule(self._base_path) if self._base_path else self.model

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.size(0))

    def token_embeddings(self, input_ids: Tensor) -> Tensor:
        """``[batch, seq]`` ids -> ``[batch, seq, hidden]`` token embeddings (no positions)."""
        return self.model.get_input_embeddings()(input_ids)

    # -- the steps ---------------------------------------------------------------------------------
    def embed(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        inputs_embeds: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """The first layer's input, as the HF model computes it.

        Args:
            input_ids: ``[batch, seq]`` token ids (or ``inputs_embeds``).
            token_type_ids: ignored (decoders have no segments); kept for the encoder's signature.
            inputs_embeds: ``[batch, seq, hidden]`` token embeddings (e.g. soft prompts + text).
            position_ids: ``[batch or 1, seq]``; default ``0 .. seq-1``.

        Returns:
            ``[batch, seq, hidden]``: token embeddings, plus learned positions (and GPT-2's embedding
            dropout) for ``positions == "learned"``.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        hidden = self.token_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        if self.positions == "learned":
            if position_ids is None:
                position_ids = self.default_positions(hidden)
            base = self.base
            hidden = base.drop(hidden + base.wpe(position_ids))
        return hidden

    @staticmethod
    def default_positions(hidden: Tensor) -> Tensor:
        """``[1, seq]`` positions ``0 .. seq-1`` (HF's default without a cache)."""
        return torch.arange(hidden.size(1), device=hidden.device).unsqueeze(0)

    def causal_inputs(
        self, attention_mask: Tensor | None, hidden: Tensor, position_ids: Tensor | None = None
    ) -> CausalInputs:
        """Causal masks and rotary embeddings for :meth:`layer_forward`.

        Args:
            attention_mask: ``[batch, seq]`` 1 for real tokens, 0 for padding (or ``None``: all real).
            hidden: ``[batch, seq, hidden]`` output of :meth:`embed`.
            position_ids: as given to :meth:`embed` (default ``0 .. seq-1``).
        """
        if position_ids is None:
            position_ids = self.default_positions(hidden)
        config = self.config
        kwargs = dict(
            config=config, inputs_embeds=hidden, attention_mask=attention_mask, cache=None,
            position_ids=position_ids,
        )  # fmt: skip
        masks = {"full_attention": create_causal_mask(**kwargs)}
        if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
            masks["sliding_attention"] = create_sliding_window_causal_mask(**kwargs)
        rotary = None
        if self.positions == "rotary":
            rotary = self.base.rotary_emb(hidden, position_ids)
        return CausalInputs(position_ids, masks, rotary)

    def attention_mask(self, attention_mask: Tensor, embeddings: Tensor, bias=None):
        """The encoder's bidirectional mask has no meaning here: use :meth:`causal_inputs`."""
        raise TypeError("a decoder takes causal_inputs(attention_mask, hidden), not attention_mask")

    def layer_forward(self, i: int, hidden_states: Tensor, inputs: CausalInputs) -> Tensor:  # type: ignore[override]
        """Run decoder layer ``i`` on ``[batch, seq, hidden]`` states (returns the same shape)."""
        types = getattr(self.config, "layer_types", None)
        mask = inputs.masks[types[i] if types else "full_attention"]
        kwargs: dict[str, Any] = {"attention_mask": mask, "position_ids": inputs.position_ids}
        if inputs.position_embeddings is not None:
            kwargs["position_embeddings"] = inputs.position_embeddings
        out = self.layers[i](hidden_states, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def lm_logits(self, hidden_states: Tensor) -> Tensor:
        """``[batch, seq, hidden]`` last layer's states -> ``[batch, seq, vocab]`` logits (final norm,
        then the LM head)."""
        normed = getattr(self.base, self._norm_name)(hidden_states)
        return self.model.get_output_embeddings()(normed)

    def forward(  # type: ignore[override]
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        inputs_embeds: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Plain decoding pass: ``[batch, seq]`` ids -> ``[batch, seq, vocab]`` next-token logits."""
        hidden = self.embed(input_ids, inputs_embeds=inputs_embeds, position_ids=position_ids)
        inputs = self.causal_inputs(attention_mask, hidden, position_ids)
        for i in range(self.num_layers):
            hidden = self.layer_forward(i, hidden, inputs)
        return self.lm_logits(hidden)

    def extra_repr(self) -> str:
        return (
            f"arch={type(self.model).__name__}, hidden={self.hidden_size}, layers={self.num_layers}, "
            f"heads={self.num_heads}, positions={self.positions}, attn={self.attn_implementation}"
        )


# -- loading -----------------------------------------------------------------------------------------
def is_tiny_decoder(name_or_path: str) -> bool:
    return name_or_path.startswith("tiny-") and name_or_path.removeprefix("tiny-") in TINY_DECODERS


def tiny_causal_config(
    arch: str,
    *,
    vocab_size: int,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    max_positions: int = 256,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """A small random-init decoder config of ``arch`` (``gpt2``, ``llama`` or ``qwen2``).

    Llama and Qwen2 get one key/value head for two query heads (grouped-query attention, as the real
    ones), so that path is tested too.
    """
    special = {
        "eos_token_id": eos_token_id,
        "bos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
    }
    if arch == "gpt2":
        return AutoConfig.for_model(
            "gpt2", vocab_size=vocab_size, n_embd=hidden_size, n_layer=num_layers, n_head=num_heads,
            n_inner=2 * hidden_size, n_positions=max_positions, **special,
        )  # fmt: skip
    if arch not in TINY_DECODERS:
        raise ValueError(f"unknown tiny decoder {arch!r}; choose from {TINY_DECODERS}")
    return AutoConfig.for_model(
        arch, vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=max(num_heads // 2, 1),
        intermediate_size=2 * hidden_size, max_position_embeddings=max_positions,
        tie_word_embeddings=True, **special,
    )  # fmt: skip


def load_causal_tokenizer(name_or_path: str):
    """The tokenizer of :func:`load_causal_lm`'s model, with an end-of-sequence and a padding token.

    Tiny decoders use MiniLM's WordPiece tokenizer with ``[SEP]`` as end of sequence; a real
    tokenizer without a padding token (GPT-2, Llama) pads with its end-of-sequence token (padding is
    masked out, so any id works).
    """
    if is_tiny_decoder(name_or_path):
        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        tokenizer.eos_token = tokenizer.sep_token
        return tokenizer
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if tokenizer.eos_token is None:
        raise ValueError(f"{name_or_path}: its tokenizer has no end-of-sequence token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_config(name_or_path: str, **tiny_kwargs: Any):
    """The HF config of :func:`load_causal_lm`'s model, without its weights."""
    if is_tiny_decoder(name_or_path):
        tokenizer = load_causal_tokenizer(name_or_path)
        return tiny_causal_config(
            name_or_path.removeprefix("tiny-"), vocab_size=len(tokenizer),
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **tiny_kwargs,
        )  # fmt: skip
    if tiny_kwargs:
        raise ValueError(f"tiny-model sizes {sorted(tiny_kwargs)} given for {name_or_path!r}")
    return AutoConfig.from_pretrained(name_or_path)


def load_causal_lm(
    name_or_path: str,
    *,
    attn_implementation: str | None = None,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    tiny_kwargs: Mapping[str, Any] | None = None,
) -> CausalBackbone:
    """Load a decoder as a :class:`CausalBackbone`.

    Args:
        name_or_path: ``"tiny-gpt2"`` / ``"tiny-llama"`` / ``"tiny-qwen2"`` (random, from a config), a
            local folder (e.g. a ``save_pretrained`` output) or a hub id.
        attn_implementation: ``"eager"`` or ``"sdpa"`` (HF's default when ``None``).
        seed: seed of a tiny model's random initialisation.
        dtype: weights' dtype for a pretrained model (e.g. ``torch.bfloat16`` on a GPU).
        tiny_kwargs: sizes of a tiny model (``hidden_size``, ``num_layers``, ``num_heads``,
            ``max_positions``): a small decoder trained from its config.
    """
    kwargs: dict[str, Any] = {}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if is_tiny_decoder(name_or_path):
        config = load_causal_config(name_or_path, **dict(tiny_kwargs or {}))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, **kwargs)
        return CausalBackbone(model, name_or_path=name_or_path)
    if name_or_path.startswith("tiny-"):
        raise ValueError(
            f"unknown tiny decoder {name_or_path!r}; choose from "
            f"{', '.join('tiny-' + a for a in TINY_DECODERS)}"
        )
    if tiny_kwargs:
        raise ValueError(f"tiny-model sizes {sorted(tiny_kwargs)} given for {name_or_path!r}")
    if not os.path.isdir(name_or_path) and name_or_path.count("/") > 1:
        raise FileNotFoundError(f"LM folder not found: {name_or_path}")
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    return CausalBackbone(model, name_or_path=name_or_path)


__all__ = [
    "TINY_DECODERS",
    "CausalBackbone",
    "CausalInputs",
    "is_tiny_decoder",
    "load_causal_config",
    "load_causal_lm",
    "load_causal_tokenizer",
    "tiny_causal_config",
]
