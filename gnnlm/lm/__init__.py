"""The one door to HuggingFace ``transformers``: loading encoders and running them layer by layer.

No other gnnlm package imports ``transformers``; a version change touches only this package.
"""

from __future__ import annotations

from gnnlm.lm.backbone import TransformerBackbone, find_layers, pool
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
    "DEFAULT_LM",
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
