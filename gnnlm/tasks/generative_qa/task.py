"""``task: generative_qa``: MetaQA answered by a decoder that *generates* the answer's name.

The questions, the dev split, the linking of topics and answers to the KB, the topic subgraphs and the
counts are those of ``task: metaqa`` (this task subclasses :class:`~gnnlm.tasks.metaqa.MetaQATask`
and reuses its setup). A question becomes a prompt (``data.template``, by default
``"question: what movies did Temuera Morrison act in ? answer:"``) and the target is a gold answer's
name followed by the end of sequence; training minimises the answer tokens' cross-entropy (one gold
answer per question and epoch, drawn from the run's generator), over the training questions that
have an answer in their subgraph, as ``task: metaqa`` does.

How the knowledge reaches the decoder is the arm (``model.style``):

* ``text``: the question alone (LM-only);
* ``triples``: the topic's subgraph verbalised before the question, ``"head relation tail."``
  sentences within ``data.triple_budget`` tokens, the topic's own triples first (retrieval-augmented
  prompting, :func:`~gnnlm.fusion.verbalize.verbalize_triples`);
* ``prompt``: graph soft prompts from a GNN over the subgraph (:class:`~gnnlm.fusion.GraphDecoder`);
* ``inject``: gated cross-attention from the tokens to the subgraph's nodes.

Evaluation generates greedily, constrained by a prefix trie to the KB's entity names
(``data.constrain: kg``; ``subgraph``: the names of the question's subgraph; ``none``: free text).

Metrics: ``hits@1`` (the generated name is a gold answer; a question without its topic in the KB is a
miss), per hop, ``loss`` (teacher-forced, the first gold answer, over questions with an answer in the
KB), ``correct`` per question in file order (for paired bootstrap), ``not_a_name`` (generations that
stopped before completing a name) and MetaQA's ``counts``.

Comparison (``configs/tasks/generative_qa.yaml``)::

    task: generative_qa
    model: {lm: tiny-gpt2, lm_kwargs: {hidden_size: 128, num_layers: 4, num_heads: 4}}
    variants:
      text: {model.style: text}
      triples: {model.style: triples}
      prompt: {model.style: prompt}
      inject: {model.style: inject}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.generative_qa.config import GenerativeQAConfig
from gnnlm.tasks.metaqa.data import LinkedQuestion, Question, parse_question
from gnnlm.tasks.metaqa.task import MetaQATask
from gnnlm.train.config import check_dataset
from gnnlm.train.task import StepOutput


class GenerativeQATask(MetaQATask):
    """Answer MetaQA questions by generating the answer's name (see the module docstring).

    Args:
        config: the run.
        data: the KB as a :class:`~gnnlm.data.KnowledgeGraph`, if already loaded.
    """

    name = "generative_qa"
    config_class = GenerativeQAConfig
    metrics = {"hits@1": "max", "loss": "min"}
    config: GenerativeQAConfig

    def __init__(self, config: GenerativeQAConfig, *, data: Any = None) -> None:
        super().__init__(config, data=data)
        self._verbalised: dict[int, str] = {}
        self._name_ids: list[list[int]] | None = None
        self._kg_trie = None

    # -- before training ---------------------------------------------------------------------------
    def validate(self) -> None:
        """The style against the options, before any data loads."""
        c, m = self.config, self.config.model
        if m.freeze_lm and m.style in ("text", "triples") and not c.finetuning.lora.r:
            raise ConfigError(
                f"{c.at('model.freeze_lm')}model.freeze_lm: style {m.style} has no graph module, "
                "so nothing would train; use finetuning.lora or another style"
            )
        # the prompts' subgraphs and answer tries are cached per topic, not per question
        if c.data.pruning == "question":
            raise ConfigError(
                f"{c.at('data.pruning')}data.pruning: question is not supported by generative_qa "
                "(its verbalised subgraphs and answer tries are per topic); use uniform or idf"
            )
        if self.kg is None:
            check_dataset(c)

    def setup(self) -> None:
        """MetaQA's setup (KB, questions, split, linking, counts, subgraph sampler), then the
        decoder's tokenizer and collators."""
        from gnnlm.fusion import DecoderCollator, text_positions
        from gnnlm.lm import load_causal_config, load_causal_tokenizer

        c, d, m = self.config, self.config.data, self.config.model
        key = (repr(d), m.lm, repr(m.lm_kwargs), m.style, m.num_prompt_tokens)
        if getattr(self, "_setup_key", None) == key:
            return  # already set up for this data (e.g. the same task trained with another seed)
        super().setup()
        self.sampler = self.collate.sampler
        self.tokenizer = load_causal_tokenizer(m.lm)
        positions = text_positions(load_causal_config(m.lm, **m.lm_kwargs))
        if positions is not None:  # prompt + answer + end of sequence (+ soft prompts) must fit
            extra = d.max_answer_length + 1 + (m.num_prompt_tokens if m.style == "prompt" else 0)
            if d.max_length + extra > positions:
                raise ConfigError(
                    f"{c.at('data.max_length')}data.max_length: {d.max_length} prompt tokens + "
                    f"{extra} answer / soft-prompt tokens exceed the LM's {positions} positions"
                )
        options = dict(max_length=d.max_length, max_target_length=d.max_answer_length)
        self.collate = DecoderCollator(self.tokenizer, self.sampler, **options)
        self.prompt_collate = DecoderCollator(
            self.tokenizer, self.sampler, padding_side="left", **options
        )
        self._setup_key = key

    # -- prompts -----------------------------------------------------------------------------------
    def verbalised(self, topic: int) -> str:
        """The topic subgraph's triples as text within ``data.triple_budget`` tokens (cached per
        topic; the same subgraph the GNN arms read)."""
        text = self._verbalised.get(topic)
        if text is None:
            from gnnlm.fusion.verbalize import subgraph_triples, verbalize_triples

            kg = self.kg
            graph = self.sampler.sample([topic])
            triples = subgraph_triples(graph, inverse_offset=kg.num_relations).tolist()
            named = [
                (kg.entity_label(h), kg.relations.name(r), kg.entity_label(t))
                for h, r, t in triples
            ]
            text, _ = verbalize_triples(named, self._count_tokens, self.config.data.triple_budget)
            self._verbalised[topic] = text
        return text

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def example(self, q: LinkedQuestion, target: str | None = None):
        """The decoder example of a linked question: the prompt (triples first for ``triples``),
        the topic mention linked to the topic, and the target ``" " + name``."""
        from gnnlm.fusion import DecoderExample

        d = self.config.data
        prefix = ""
        if self.config.model.style == "triples" and q.topic is not None:
            prefix = self.verbalised(q.topic)
            prefix = prefix + " " if prefix else ""
        head, _, tail = d.template.partition("{question}")
        text = prefix + head + q.question.text + tail
        start = len(prefix) + len(head)
        mentions, entities = [], []
        if q.topic is not None:
            s, e = q.question.span
            if e > s:
                mentions.append((start + s, start + e, q.topic))
            else:  # the topic is not written in the text: linked without a mention
                entities.append(q.topic)
        return DecoderExample(
            text, mentions, entities, id=q.question.source,
            target=None if target is None else " " + target,
        )  # fmt: skip

    def gold_names(self, q: LinkedQuestion) -> list[str]:
        """The gold answers that are KB entities, by their KB name (what a trie can generate)."""
        return [self.kg.entity_label(a) for a in sorted(q.answers)]

    # -- model -------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        """A :class:`~gnnlm.fusion.GraphDecoder` with the style's graph modules (none for ``text``
        and ``triples``)."""
        from gnnlm.fusion import DecoderFusionConfig, GraphDecoder

        c, m, kg = self.config, self.config.model, self.kg
        table = None
        if m.knowledge and m.node_features == "text":
            from gnnlm.fusion import entity_texts, text_node_features

            table = text_node_features(m.node_feature_lm, entity_texts(kg), quiet=True)
        config = DecoderFusionConfig(
            lm=m.lm, lm_kwargs=dict(m.lm_kwargs), attn_implementation=m.attn_implementation,
            knowledge=m.knowledge, xattn_layers=list(m.xattn_layers),
            num_prompt_tokens=m.num_prompt_tokens, prompt_source=m.prompt_source,
            encoder=m.encoder, encoder_kwargs=dict(m.encoder_kwargs),
            num_gnn_layers=m.num_gnn_layers, node_channels=m.node_channels,
            num_entities=kg.num_entities, num_relations=2 * kg.num_relations,
            node_features=m.node_features, gate_init=m.gate_init,
        )  # fmt: skip
        model = GraphDecoder(config, node_feature_table=table, seed=c.seed)
        if m.freeze_lm:
            model.lm.requires_grad_(False)
        return model

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """``lm`` (with LoRA adapters), ``gnn``, ``fusion`` (cross-attention, prompt projector) and
        ``gates``."""
        return model.parameter_groups()

    # -- training ----------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, indices: Tensor, generator: torch.Generator):
        """Mean cross-entropy of one gold answer's tokens (drawn per question from ``generator``)."""
        examples = []
        for i in indices.tolist():
            q = self.questions["train"][self.train_indices[i]]
            names = self.gold_names(q)
            pick = int(torch.randint(len(names), (1,), generator=generator))
            examples.append(self.example(q, names[pick]))
        out = model(self._to_device(self.collate(examples), model), logits="loss")
        return StepOutput(out.loss)

    @staticmethod
    def _to_device(batch, model: nn.Module):
        device = next(model.parameters()).device
        return batch if device.type == "cpu" else batch.to(device)

    # -- generation --------------------------------------------------------------------------------
    def name_ids(self) -> list[list[int]]:
        """Every entity's name tokenised as a target (``" " + name``), computed once."""
        if self._name_ids is None:
            names = [" " + self.kg.entity_label(i) for i in range(self.kg.num_entities)]
            ids = self.tokenizer(names, add_special_tokens=False)["input_ids"]
            self._name_ids = [x[: self.config.data.max_answer_length] for x in ids]
        return self._name_ids

    def tries(self, questions: Sequence[LinkedQuestion]):
        """One :class:`~gnnlm.generation.NameTrie` per question (``None`` for ``constrain: none``)."""
        from gnnlm.generation import NameTrie

        constrain = self.config.data.constrain
        if constrain == "none":
            return None
        ids, eos = self.name_ids(), self.tokenizer.eos_token_id
        if constrain == "kg":
            if self._kg_trie is None:
                label = self.kg.entity_label
                self._kg_trie = NameTrie(((x, label(i)) for i, x in enumerate(ids)), eos)
            return [self._kg_trie] * len(questions)
        tries = []
        for q in questions:
            nodes = self.sampler.node_set([q.topic]).tolist() if q.topic is not None else []
            tries.append(
                NameTrie(((ids[n], self.kg.entity_label(n)) for n in nodes if n != q.topic), eos)
            )
        return tries

    def generate_answers(self, model: nn.Module, questions: Sequence[LinkedQuestion]):
        """Greedy (constrained) generations, one :class:`~gnnlm.generation.Generation` per
        question."""
        from gnnlm.generation import generate

        batch = self._to_device(self.prompt_collate([self.example(q) for q in questions]), model)
        return generate(
            model, batch, eos_id=self.tokenizer.eos_token_id, tokenizer=self.tokenizer,
            max_new_tokens=self.config.data.max_answer_length + 1, trie=self.tries(questions),
        )  # fmt: skip

    def is_correct(self, generation, q: LinkedQuestion) -> bool:
        """Whether a generation names a gold answer (by trie lookup; free text by normalised
        string)."""
        gold = set(q.question.answers) | set(self.gold_names(q))
        if self.config.data.constrain != "none":
            return bool(gold & set(generation.names))
        return _normal(generation.text or "") in {_normal(g) for g in gold}

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, split: str) -> dict[str, Any]:
        """Hits@1 of the generated names over ``split`` and per hop, the teacher-forced loss, per-question
        ``correct``, ``not_a_name`` and the counts."""
        questions = self.questions[split]
        linked = [i for i, q in enumerate(questions) if q.topic is not None]
        correct = [0] * len(questions)
        size = self.config.evaluation.batch_size
        loss, answerable, not_a_name = 0.0, 0, 0
        for start in range(0, len(linked), size):
            chunk = linked[start : start + size]
            chosen = [questions[i] for i in chunk]
            for i, q, g in zip(chunk, chosen, self.generate_answers(model, chosen)):
                correct[i] = int(self.is_correct(g, q))
                not_a_name += self.config.data.constrain != "none" and not g.names
            with_answer = [q for q in chosen if q.answers]
            if with_answer:
                examples = [self.example(q, self.gold_names(q)[0]) for q in with_answer]
                out = model(self._to_device(self.collate(examples), model), logits="loss")
                loss += float(out.loss.detach()) * len(with_answer)
                answerable += len(with_answer)
        metrics: dict[str, Any] = {
            "hits@1": sum(correct) / max(len(questions), 1),
            "loss": loss / max(answerable, 1),
            "num_examples": len(questions),
            "not_a_name": not_a_name,
        }
        for k in self.config.data.hops:
            mine = [c for c, q in zip(correct, questions) if q.question.hops == k]
            metrics[f"hits@1_{k}hop"] = sum(mine) / len(mine) if mine else None
            metrics[f"num_examples_{k}hop"] = len(mine)
        metrics["counts"] = self.counts[split]
        metrics["correct"] = correct
        return metrics

    # -- inference ---------------------------------------------------------------------------------
    def link_text(self, text: str, entities: Sequence[str] = ()) -> LinkedQuestion:
        """A question for generation: ``text`` with one ``[topic]`` (``"what did [X] do"``), or plain
        text with the topic named in ``entities`` (its first occurrence in ``text`` is the mention).

        Raises:
            ConfigError: an entity that is not in the KB, or no topic at all.
        """
        if "[" in text:
            plain, span, topic = parse_question(text, path="<text>")
        else:
            if not entities:
                raise ConfigError("give the topic as [name] in the text or with --entities NAME")
            plain, topic = text, entities[0]
            at = text.find(topic)
            span = (at, at + len(topic)) if at >= 0 else (0, 0)
        for name in [topic, *entities]:
            if name not in self.entity_id:
                raise ConfigError(f"unknown entity {name!r} in {self.kg.name}")
        return LinkedQuestion(
            Question(plain, span, topic), self.entity_id[topic], frozenset(), False
        )

    def predict(
        self, model: nn.Module, records: Iterable[Mapping[str, Any]], *, top_k: int = 1
    ) -> list[dict[str, Any]]:
        """The generated answer of each ``{"question": "what movies did [X] act in"}`` (or
        ``{"text": ..., "entities": [...]}``): ``{"question", "topic", "answer", "names"}``."""
        linked = []
        for number, record in enumerate(records, 1):
            text = record.get("question", record.get("text"))
            if not isinstance(text, str):
                raise ConfigError(f"record {number}: expected a 'question' or 'text' string")
            linked.append(self.link_text(text, list(record.get("entities", []))))
        if not linked:
            return []
        generations = self.generate_answers(model, linked)
        return [
            {"question": q.question.text, "topic": q.question.topic, "answer": g.text,
             "names": g.names, "finished": g.finished}
            for q, g in zip(linked, generations)
        ]  # fmt: skip


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


__all__ = ["GenerativeQATask"]
