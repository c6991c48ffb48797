"""The config of ``task: generative_qa`` (see :mod:`gnnlm.tasks.generative_qa.task` for the YAML form)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, Config, checked
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.tasks.metaqa.config import MetaQADataConfig, MetaQAEvaluationConfig
from gnnlm.train.config import RunConfig

#: how the knowledge reaches the decoder (the arms of a comparison)
STYLES = ("text", "triples", "prompt", "inject")
#: what generated answers are constrained to
CONSTRAINTS = ("kg", "subgraph", "none")


@dataclass
class GenerativeQAModelConfig(Config):
    """The decoder and how knowledge reaches it.

    Attributes:
        style: ``text`` (the question alone: LM-only), ``triples`` (the topic's subgraph verbalised
            before the question, within ``data.triple_budget`` tokens), ``prompt`` (graph soft prompts
            from the GNN over the subgraph) or ``inject`` (gated cross-attention from the tokens to the
            subgraph's nodes).
        lm: a causal LM: ``tiny-gpt2`` / ``tiny-llama`` / ``tiny-qwen2`` (random weights from a config,
            trained here: ``lm_kwargs`` sets its sizes), a folder or a hub id.
        lm_kwargs: sizes of a tiny LM (``hidden_size``, ``num_layers``, ``num_heads``,
            ``max_positions``).
        attn_implementation: ``eager`` / ``sdpa`` / ``null`` (HF default).
        freeze_lm: keep the LM's own weights fixed (train the GNN and projector only; with
            ``finetuning.lora`` the adapters train too).
        encoder, encoder_kwargs, node_channels, num_gnn_layers, num_prompt_tokens, prompt_source,
        xattn_layers, gate_init: as in :class:`~gnnlm.fusion.decoder.DecoderFusionConfig` (used by
            ``prompt`` and ``inject``).
        node_features: ``learned`` or ``text`` (``node_feature_lm``'s encodings of the entity names,
            cached: :func:`~gnnlm.fusion.text_node_features`).
        node_feature_lm: the encoder of ``text`` node features (``minilm``).
    """

    style: str = "triples"
    lm: str = "tiny-gpt2"
    lm_kwargs: dict[str, Any] = field(default_factory=dict)
    attn_implementation: str | None = None
    freeze_lm: bool = False
    encoder: str = "compgcn"
    encoder_kwargs: dict[str, Any] = field(default_factory=lambda: {"batch_norm": False})
    node_channels: int = checked(64, AT_LEAST_1, "64")
    num_gnn_layers: int = checked(2, AT_LEAST_1, "2")
    num_prompt_tokens: int = checked(8, AT_LEAST_1, "8")
    prompt_source: str = "subgraph"
    xattn_layers: list[int] = field(default_factory=list)
    gate_init: str = "open"
    node_features: str = "learned"
    node_feature_lm: str = "minilm"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"model.style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.node_features not in ("learned", "text"):
            raise ValueError(
                f"model.node_features must be learned or text, got {self.node_features!r}"
            )

    @property
    def knowledge(self) -> list[str]:
        """The :class:`~gnnlm.fusion.decoder.GraphDecoder` styles of this arm."""
        return {"prompt": ["prompt"], "inject": ["xattn"]}.get(self.style, [])


@dataclass
class GenerativeQADataConfig(MetaQADataConfig):
    """MetaQA's questions and subgraphs (:class:`~gnnlm.tasks.metaqa.config.MetaQADataConfig`: the
    same dev split, hops, subgraph budget) and the prompts.

    Attributes:
        max_length: the most prompt tokens (verbalised triples + question); a longer prompt loses
            its beginning.
        triple_budget: tokens of verbalised triples before the question (``style: triples``).
        template: the question's prompt; ``{question}`` is the question without brackets.
        max_answer_length: the most tokens of a target answer (and of a generated one).
        constrain: what generation may answer: ``kg`` (any entity name of the KB, a trie over all
            names; the default, the same for every arm), ``subgraph`` (the names of the question's
            subgraph, topic excluded: what the node ranker of ``task: metaqa`` chooses from) or
            ``none`` (free text, compared to the gold names after lower-casing and collapsing
            spaces).
    """

    max_length: int = checked(128, AT_LEAST_1, "128")
    triple_budget: int = checked(96, AT_LEAST_0, "96")
    template: str = "question: {question} ? answer:"
    max_answer_length: int = checked(16, AT_LEAST_1, "16")
    constrain: str = "kg"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.constrain not in CONSTRAINTS:
            raise ValueError(
                f"data.constrain must be one of {', '.join(CONSTRAINTS)}, got {self.constrain!r}"
            )
        if "{question}" not in self.template:
            raise ValueError(f"data.template needs a {{question}} field, got {self.template!r}")


@dataclass
class GenerativeQATrainingConfig(FusedTrainingConfig):
    """AdamW at ``lr`` for everything (a decoder trained from its config learns at the GNN's rate;
    give a pretrained one ``param_groups: {lm: {lr: ...}}``), the gates faster."""

    param_groups: dict[str, dict[str, Any]] = field(default_factory=lambda: {"gates": {"lr": 2e-2}})


@dataclass
class GenerativeQAEvaluationConfig(MetaQAEvaluationConfig):
    """Validation: hits@1 of the generated names on the held-out share of dev."""

    batch_size: int = checked(64, AT_LEAST_1, "64")


@dataclass
class GenerativeQAConfig(RunConfig):
    """A generative MetaQA run (see :mod:`gnnlm.tasks.generative_qa.task`)."""

    task: str = "generative_qa"
    dataset: str = "metaqa"
    model: GenerativeQAModelConfig = field(default_factory=GenerativeQAModelConfig)
    data: GenerativeQADataConfig = field(default_factory=GenerativeQADataConfig)
    training: GenerativeQATrainingConfig = field(default_factory=GenerativeQATrainingConfig)
    evaluation: GenerativeQAEvaluationConfig = field(default_factory=GenerativeQAEvaluationConfig)


__all__ = [
    "CONSTRAINTS",
    "STYLES",
    "GenerativeQAConfig",
    "GenerativeQADataConfig",
    "GenerativeQAModelConfig",
]
