"""The one door to HuggingFace ``transformers``: loading encoders and decoders (:mod:`gnnlm.lm.causal`)
and running them layer by layer.

No other gnnlm package imports ``transformers``; a version change touches only this package.
"""

from __future__ import annotations

from gnnlm.lm.backbone import TransformerBackbone, find_layers, pool
from gnnlm.lm.causal import (
    TINY_DECODERS,
    CausalBackbone,
    CausalInputs,
    load_causal_config,
    load_causal_lm,
    load_causal_tokenizer,
)
from gnnlm.lm.loading import (
    DEFAULT_LM,
    TINY_ARCHITECTURES,
    load_lm,
    load_lm_config,
    load_tokenizer,
    minilm_path,
    save_lm,
    tiny_config,
)

__all__ = [
    "CausalBackbone",
    "CausalInputs",
    "DEFAULT_LM",
    "TINY_DECODERS",
    "load_causal_config",
    "load_causal_lm",
    "load_causal_tokenizer",
    "TINY_ARCHITECTURES",
    "TransformerBackbone",
    "find_layers",
    "load_lm",
    "load_lm_config",
    "load_tokenizer",
    "minilm_path",
    "pool",
    "save_lm",
    "tiny_config",
]
