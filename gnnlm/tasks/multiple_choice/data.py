"""Everything a multiple-choice run reads, prepared once: questions, graph, grounding, relevance, pairs.

:class:`QAData` reads the question files into splits, loads the graph, grounds every question and choice,
encodes concepts and questions for relevance, and builds each question's (question, choice) pairs with
their subgraphs on first use. All of it is a deterministic function of the ``data:`` section, ``model.lm``
(the relevance encoder) and the files, so the runs of one process (the arms and seeds of a comparison)
share one instance (:meth:`QAData.shared`) instead of grounding and extracting 50k subgraphs per run. The
extractor's tie-break seed is fixed for the same reason: every arm and seed reads the same subgraphs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.tasks.multiple_choice.batch import ChoicePair
from gnnlm.tasks.multiple_choice.config import MultipleChoiceConfig
from gnnlm.tasks.multiple_choice.extraction import ANSWER, QUESTION
from gnnlm.tasks.multiple_choice.grounding import ConceptMatcher, Match
from gnnlm.tasks.multiple_choice.reader import Question, question_counts, read_questions

#: seed of the subgraph sampler's tie-break (not the run's: the subgraphs are data)
EXTRACTION_SEED = 0
#: prepared data of recent runs in this process (see QAData.shared); two entries at most
_SHARED: dict[str, QAData] = {}


@dataclass
class GroundedQuestion:
    """A question with its grounded concepts.

    Attributes:
        question: the question as read.
        stem: concept mentions in the stem.
        extra: concepts of the ``question_concept`` field not already in ``stem`` (no span).
        choices: concept mentions per choice.
    """

    question: Question
    stem: list[Match]
    extra: list[int]
    choices: list[list[Match]]

    @property
    def question_concepts(self) -> list[int]:
        return [m.concept for m in self.stem] + self.extra


def coverage(grounded: list[GroundedQuestion]) -> dict[str, float]:
    """Shares of questions with >= 1 question concept and of choices with >= 1 answer concept, and
    the mean number of each."""
    choices = [c for g in grounded for c in g.choices]
    n, k = max(len(grounded), 1), max(len(choices), 1)
    return {
        "questions_with_concept": sum(bool(g.question_concepts) for g in grounded) / n,
        "choices_with_concept": sum(bool(c) for c in choices) / k,
        "question_concepts": sum(len(g.question_concepts) for g in grounded) / n,
        "answer_concepts": sum(len(c) for c in choices) / k,
    }


class QAData:
    """The prepared data of a multiple-choice run (see the module docstring).

    Args:
        config: the run (``data:`` and ``model.lm`` are read; ``at()`` locates errors).
        kg: the concept graph, if already loaded (default: ConceptNet from ``data.conceptnet_dir``).

    Attributes:
        kg: the graph; ``kg.entity_text.names`` are the concept strings.
        matcher: the :class:`~gnnlm.tasks.multiple_choice.grounding.ConceptMatcher` over them.
        questions: ``{"train" | "valid" | "test": [GroundedQuestion, ...]}``.
        counts: ``files`` (per file: questions, choices per question, ...), ``splits`` (questions
            per split), ``graph`` (its size) and ``coverage`` (per split).
    """

    def __init__(self, config: MultipleChoiceConfig, kg: Any = None) -> None:
        from gnnlm.tasks.multiple_choice.conceptnet import load_conceptnet
        from gnnlm.tasks.multiple_choice.extraction import BridgeExtractor

        self.config = config
        d = config.data
        files = d.files()
        self.counts: dict[str, Any] = {}
        splits = self._read_splits(files)
        self.kg = (
            kg if kg is not None else load_conceptnet(files["conceptnet"], d.conceptnet_subsets)
        )
        if self.kg.entity_text is None or not self.kg.entity_text.names:
            raise ConfigError(f"{self.kg.name}: multiple choice needs concept names (entity_text)")
        self.matcher = ConceptMatcher(self.kg.entity_text.names, max_ngram=d.max_ngram)
        self.questions = {s: [self.ground(q) for q in qs] for s, qs in splits.items()}
        self.counts["graph"] = {
            "concepts": self.kg.num_entities, "relations": self.kg.num_relations,
            "triples": int(self.kg.train.size(0)), "matchable_concepts": self.matcher.num_indexed,
        }  # fmt: skip
        self.counts["coverage"] = {s: coverage(g) for s, g in self.questions.items()}
        self.extractor = BridgeExtractor(
            self.kg, max_nodes=d.max_nodes, max_hops=d.max_hops, seed=EXTRACTION_SEED
        )
        self._pairs: dict[tuple[str, int], list[ChoicePair]] = {}
        self._relevance_tables()

    @classmethod
    def shared(cls, config: MultipleChoiceConfig, kg: Any = None) -> QAData:
        """The instance of an earlier run of this process with the same ``data:``, ``model.lm`` and
        unchanged files, else a new one (a graph passed in is never shared)."""
        if kg is not None:
            return cls(config, kg)
        files = {k: str(v) for k, v in config.data.files().items()}
        stamps = {k: _stamp(Path(v)) for k, v in files.items() if v != "None"}
        key = json.dumps([config.data.to_dict(), config.model.lm, files, stamps], sort_keys=True)
        if key not in _SHARED:
            while len(_SHARED) >= 2:
                _SHARED.pop(next(iter(_SHARED)))
            _SHARED[key] = cls(config)
        return _SHARED[key]

    def _read_splits(self, files: Mapping[str, Any]) -> dict[str, list[Question]]:
        """train / valid / test questions (the in-house test split without ``test_file``), each cut
        to ``num_<split>`` when set."""
        c, d = self.config, self.config.data
        train = read_questions(files["train"])
        valid = read_questions(files["valid"])
        self.counts["files"] = {
            str(files["train"]): question_counts(train), str(files["valid"]): question_counts(valid)
        }  # fmt: skip
        if files["test"] is not None:
            test = read_questions(files["test"])
            self.counts["files"][str(files["test"])] = question_counts(test)
        else:
            if d.in_house_test >= len(train):
                raise ConfigError(
                    f"{c.at('data.in_house_test')}data.in_house_test={d.in_house_test} leaves no "
                    f"training question of the {len(train)} in {files['train']}"
                )
            cut = len(train) - d.in_house_test
            train, test = train[:cut], train[cut:]
        splits = {"train": train, "valid": valid, "test": test}
        for split, limit in (("train", d.num_train), ("valid", d.num_valid), ("test", d.num_test)):
            if limit:
                splits[split] = splits[split][:limit]
        self.counts["splits"] = {s: len(q) for s, q in splits.items()}
        return splits

    def ground(self, question: Question) -> GroundedQuestion:
        """The concepts of ``question``'s stem (and ``question_concept`` field) and choices."""
        stem = self.matcher.ground(question.stem)
        extra: list[int] = []
        if self.config.data.use_question_concept and question.question_concept:
            seen = {m.concept for m in stem}
            found = self.matcher.concepts_of(question.question_concept)
            extra = [x for x in found if x not in seen]
        choices = [self.matcher.ground(c) for c in question.choices]
        return GroundedQuestion(question, stem, extra, choices)

    def _relevance_tables(self) -> None:
        """Unit-norm LM encodings of every concept and every question (``data.relevance: lm``), both
        cached on disk by :func:`~gnnlm.fusion.node_features.text_node_features`."""
        self._concept_vectors: Tensor | None = None
        self._question_vectors: dict[str, Tensor] = {}
        if self.config.data.relevance == "none":
            return
        from gnnlm.fusion.node_features import text_node_features
        from gnnlm.lm import load_lm

        lm = load_lm(self.config.model.lm)
        stems = sorted({g.question.stem for qs in self.questions.values() for g in qs})
        concepts = text_node_features(lm, list(self.kg.entity_text.names), quiet=True)
        questions = text_node_features(lm, stems, quiet=True)  # [num_stems, hidden]
        self._concept_vectors = nn.functional.normalize(concepts, dim=-1)  # [num_concepts, hidden]
        self._question_vectors = dict(zip(stems, nn.functional.normalize(questions, dim=-1)))

    def relevance(self, stem: str) -> Tensor | None:
        """``[num_concepts]`` cosine similarity of every concept to the question ``stem`` (``None``
        with ``data.relevance: none``)."""
        if self._concept_vectors is None:
            return None
        vector = self._question_vectors.get(stem)
        if vector is None:  # a question seen first at prediction time
            from gnnlm.fusion.node_features import text_node_features

            vector = text_node_features(self.config.model.lm, [stem], quiet=True)[0]
            vector = self._question_vectors[stem] = nn.functional.normalize(vector, dim=-1)
        return self._concept_vectors @ vector

    def pairs(self, split: str, index: int) -> list[ChoicePair]:
        """The (question, choice) pairs of question ``index`` of ``split`` (built once, cached)."""
        key = (split, index)
        if key not in self._pairs:
            with single_thread():
                self._pairs[key] = self.make_pairs(self.questions[split][index])
        return self._pairs[key]

    def make_pairs(self, grounded: GroundedQuestion) -> list[ChoicePair]:
        """One :class:`ChoicePair` per choice: its subgraph and the mentions of its nodes."""
        q = grounded.question
        relevance = self.relevance(q.stem)
        out = []
        for text, matches in zip(q.choices, grounded.choices):
            answer = [m.concept for m in matches]
            graph = self.extractor.extract(grounded.question_concepts, answer, relevance)
            local = {int(n): k for k, n in enumerate(graph.n_id[: graph.num_seeds].tolist())}
            mentions = [
                (segment, m.start, m.end, local[m.concept])
                for segment, spans in ((0, grounded.stem), (1, matches))
                for m in spans
                if m.concept in local
            ]
            out.append(ChoicePair(q.stem, text, graph, mentions))
        return out

    def subgraph_stats(self, split: str) -> dict[str, float]:
        """Per pair of ``split``: mean nodes, grounded concepts and edges; the share of pairs whose
        subgraph has a bridge node (``with_bridge``) and whose question and answer concepts are joined
        at all (``linked``: a bridge or a direct edge); and the share of questions whose correct
        choice is linked (``answer_linked``)."""
        questions = self.questions[split]
        graphs = [p.graph for i in range(len(questions)) for p in self.pairs(split, i)]
        k = max(len(graphs), 1)
        answers = [
            linked(self.pairs(split, i)[g.question.answer].graph)
            for i, g in enumerate(questions)
            if g.question.answer is not None
        ]
        return {
            "nodes": sum(g.num_nodes for g in graphs) / k,
            "grounded": sum(int(g.num_seeds) for g in graphs) / k,
            "edges": sum(g.edge_index.size(1) for g in graphs) / k,
            "with_bridge": sum(g.num_nodes > g.num_seeds for g in graphs) / k,
            "linked": sum(linked(g) for g in graphs) / k,
            "answer_linked": sum(answers) / max(len(answers), 1),
        }


def linked(graph) -> bool:
    """Whether a pair's subgraph joins a question concept to an answer concept: it has a bridge node
    (every non-grounded node lies on such a path) or an edge between the two kinds."""
    if graph.num_nodes > graph.num_seeds:
        return True
    kinds = graph.node_type[graph.edge_index]  # [2, e]
    return bool(((kinds[0] == QUESTION) & (kinds[1] == ANSWER)).any())


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """torch on one intra-op thread: extraction is hundreds of ops on tensors of a few hundred
    elements, where a second thread only adds synchronisation (5x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _stamp(path: Path) -> list[int]:
    """``[size, mtime_ns]`` of a file, or of every ``train.txt`` below a folder."""
    paths = [path] if path.is_file() else sorted(path.rglob("train.txt"))
    return [x for p in paths for x in (p.stat().st_size, p.stat().st_mtime_ns)]
