"""Fusing a HuggingFace transformer with a GNN over knowledge-graph subgraphs.

* :class:`FusedLM` runs the LM layer by layer and interleaves injection modes with its top ``K`` layers;
* modes (:data:`injection_resolver`): ``graph`` (two-way cross-attention tokens <-> subgraph nodes),
  ``entity`` (ERNIE-style fusion at mention tokens), ``relation`` (per-relation attention bias),
  ``memory`` (top-k retrieval over a KG memory), ``dual_tower`` (separate towers, contrastive alignment,
  late join) and ``adaptive`` (a learned gate on the others);
* initialisation: each mode's output projection starts at zero with its gate open (``gate_init``), so a
  fresh model is exactly the LM and the projections learn from the first step; node features are
  ``learned``, ``kge`` or ``text`` (:func:`text_node_features`, cached LM encodings of entity texts);
* data: :class:`TextGraphCollator` making a :class:`TextGraphBatch` (tokenizer tensors + one PyG
  ``Batch``) with a :class:`~gnnlm.data.SubgraphSampler` (re-exported here; it lives in
  :mod:`gnnlm.data.subgraph`, so tasks sample subgraphs without importing fusion);
* decoders (:mod:`gnnlm.fusion.decoder`): :class:`GraphDecoder`, a causal LM with gated cross-attention
  to the subgraph's nodes and / or graph soft prompts, batches from :class:`DecoderCollator`.
"""

from __future__ import annotations

from gnnlm.data.subgraph import SubgraphSampler
from gnnlm.fusion.attention import MaskedCrossAttention, TanhGate
from gnnlm.fusion.batch import TextGraphBatch, TextGraphCollator, TextGraphExample, text_positions
from gnnlm.fusion.config import FusionConfig
from gnnlm.fusion.decoder import DecoderFusionConfig, DecoderOutput, GraphDecoder, GraphPrompt
from gnnlm.fusion.decoder_batch import DecoderCollator, DecoderExample
from gnnlm.fusion.injection import FusionState, Injection, InjectionContext
from gnnlm.fusion.kge_source import kge_tables, load_kge_run
from gnnlm.fusion.model import FusedLM, injection_parameters
from gnnlm.fusion.modes import memory_topk
from gnnlm.fusion.node_features import entity_texts, text_node_features
from gnnlm.fusion.outputs import FusionOutput
from gnnlm.fusion.registry import injection_resolver

__all__ = [
    "DecoderCollator",
    "DecoderExample",
    "DecoderFusionConfig",
    "DecoderOutput",
    "GraphDecoder",
    "GraphPrompt",
    "FusedLM",
    "FusionConfig",
    "FusionOutput",
    "FusionState",
    "Injection",
    "InjectionContext",
    "MaskedCrossAttention",
    "SubgraphSampler",
    "TanhGate",
    "TextGraphBatch",
    "TextGraphCollator",
    "TextGraphExample",
    "injection_parameters",
    "injection_resolver",
    "entity_texts",
    "kge_tables",
    "load_kge_run",
    "memory_topk",
    "text_node_features",
    "text_positions",
]
