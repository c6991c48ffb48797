"""Initial GNN node features from text: the LM's pooled encoding of each entity's name / description.

``FusionConfig(node_features="text")`` starts every node from the LM's view of its entity, as QA-GNN
(Yasunaga et al., 2021) and GreaseLM initialise nodes from a language model's encoding of the entity
text, instead of a random row that a short run never updates for most entities::

    texts = entity_texts(kg)                               # "name: description" per entity
    table = text_node_features("minilm", texts)            # [num_entities, 384], computed once, cached
    model = FusedLM(FusionConfig(node_features="text", ...), node_feature_table=table)

The encoding (no gradient, eval mode, masked mean pooling as :func:`gnnlm.lm.pool`) is cached as
safetensors under the user cache (``$GNNLM_CACHE_DIR/node_features/``, default
``~/.cache/gnnlm/node_features/``), keyed by a hash of the LM's weights and class, the tokenizer, the
maximum length and the texts, so a second call (or a second run) reads the file instead of running the
LM, and changing any text or the LM's weights computes a new entry. Entries are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from gnnlm.lm import TransformerBackbone, load_lm, load_tokenizer, pool
from gnnlm.utils.atomic import atomic_write
from gnnlm.utils.modules import eval_mode

if TYPE_CHECKING:
    from gnnlm.data.knowledge_graph import KnowledgeGraph

#: bump when the encoding (pooling, truncation, text handling) changes
CACHE_VERSION = 1
CACHE_FOLDER = "node_features"


def entity_texts(kg: KnowledgeGraph, *, descriptions: bool = True) -> list[str]:
    """One text per entity of ``kg``: ``"name: description"`` where both are known, else the name
    (:meth:`~gnnlm.data.KnowledgeGraph.entity_label`: the identifier when there is no name)."""
    text = kg.entity_text
    out = []
    for i in range(kg.num_entities):
        label = kg.entity_label(i)
        description = None
        if descriptions and text is not None and i < len(text.descriptions):
            description = text.descriptions[i]
        out.append(f"{label}: {description}" if description else label)
    return out


def default_cache_dir() -> Path:
    """``<user cache>/node_features`` (:func:`gnnlm.data.sources.cache_dir`)."""
    from gnnlm.data.sources import cache_dir

    return cache_dir() / CACHE_FOLDER


def weights_digest(lm: TransformerBackbone) -> str:
    """A hex digest of the LM's class, config and every weight (its identity, whatever its name)."""
    digest = hashlib.sha256()
    digest.update(type(lm.model).__name__.encode())
    digest.update(lm.model.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(lm.model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(lm: TransformerBackbone, tokenizer, texts: list[str], max_length: int) -> str:
    """The cache entry name: a hash of the LM's weights, the tokenizer, ``max_length`` and the texts."""
    digest = hashlib.sha256()
    header = {
        "v": CACHE_VERSION,
        "lm": weights_digest(lm),
        "tokenizer": [type(tokenizer).__name__, len(tokenizer), tokenizer.name_or_path],
        "max_length": max_length,
        "pooling": "mean",
        "num_texts": len(texts),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for text in texts:
        data = text.encode()
        digest.update(len(data).to_bytes(8, "little"))  # unambiguous: no separator inside a text
        digest.update(data)
    return digest.hexdigest()[:32]


def text_node_features(
    lm: TransformerBackbone | str,
    texts: list[str],
    *,
    batch_size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    quiet: bool = False,
    tokenizer=None,
    max_length: int = 128,
) -> Tensor:
    """``[len(texts), hidden]`` masked-mean-pooled LM encodings of ``texts``, computed once and cached.

    Args:
        lm: a loaded :class:`~gnnlm.lm.TransformerBackbone` (run on its device, in eval mode, without
            gradient; its modes are restored) or a name for :func:`~gnnlm.lm.load_lm` (``"minilm"``).
        texts: one text per entity (e.g. :func:`entity_texts`), in entity-id order.
        batch_size: texts per forward pass (sorted by length first, so batches pad little).
        cache_dir: folder of the cache entries (default :func:`default_cache_dir`).
        quiet: no progress bar or messages.
        tokenizer: the LM's tokenizer (default: :func:`~gnnlm.lm.load_tokenizer` of the LM's
            ``name_or_path``).
        max_length: tokens per text (longer texts are truncated; capped at the tokenizer's limit).

    Returns:
        A float32 CPU tensor, row ``i`` for ``texts[i]``; pass it as ``FusedLM(...,
        node_feature_table=...)`` with ``node_features: text``.
    """
    if isinstance(lm, str):
        lm = load_lm(lm)
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings (one per entity)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if tokenizer is None:
        if not lm.name_or_path:
            raise ValueError("the LM has no name_or_path to find its tokenizer by: pass tokenizer=")
        tokenizer = load_tokenizer(lm.name_or_path)
    max_length = min(max_length, int(tokenizer.model_max_length))
    texts = list(texts)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{cache_key(lm, tokenizer, texts, max_length)}.safetensors"
    cached = _read(path, len(texts), lm.hidden_size)
    if cached is not None:
        return cached
    start = time.perf_counter()
    table = _encode(lm, tokenizer, texts, batch_size, max_length, quiet)
    meta = {
        "lm": lm.name_or_path,
        "num_texts": str(len(texts)),
        "max_length": str(max_length),
        "seconds": f"{time.perf_counter() - start:.1f}",
    }
    atomic_write(path, lambda tmp: save_file({"features": table}, tmp, meta))
    if not quiet:
        print(
            f"node features: {len(texts)} texts encoded with {lm.name_or_path or 'the LM'} in "
            f"{meta['seconds']} s, cached at {path}",
            file=sys.stderr,
        )
    return table


def _read(path: Path, rows: int, hidden: int) -> Tensor | None:
    """The cached table, or ``None`` when there is none or it does not read back (warned, rebuilt)."""
    if not path.is_file():
        return None
    try:
        table = load_file(str(path))["features"]
    except (SafetensorError, KeyError, OSError) as err:
        warnings.warn(
            f"{path}: unreadable node-feature cache entry ({err}); recomputing", stacklevel=3
        )
        return None
    if tuple(table.shape) != (rows, hidden):
        warnings.warn(
            f"{path}: cached shape {tuple(table.shape)}, expected {(rows, hidden)}; recomputing",
            stacklevel=3,
        )
        return None
    return table


def _encode(
    lm, tokenizer, texts: list[str], batch_size: int, max_length: int, quiet: bool
) -> Tensor:
    from gnnlm.utils.progress import progress

    device = next(lm.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths per batch
    out = torch.empty(len(texts), lm.hidden_size)
    starts = range(0, len(texts), batch_size)
    with eval_mode(lm):
        for s in progress(
            starts, desc="node features", unit="batch", disable=quiet or len(starts) < 2
        ):
            index = order[s : s + batch_size]
            enc = tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = lm(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
            out[torch.tensor(index)] = pool(hidden, enc["attention_mask"], "mean").float().cpu()
    return out
