"""The config of a few-shot relation classification run (``task: fewrel``).

::

    task: fewrel
    dataset: fb15k-237                       # the KG the entities link to (KG arm)
    model: {lm: minilm, injection: []}       # [entity] with entity: {source: gnn}: the KG arm
    data: {path: .../val_wiki.json, test_relations: [P206, ...], train_per_relation: 400}
    evaluation: {settings: [[5, 1], [5, 5], [10, 1]], queries: 5, episodes: 1000}

Relations: the file's relations are split into disjoint meta-train and meta-test relations. Listed
(``data.train_relations`` / ``data.test_relations``), or drawn: the sorted relation ids permuted by a
generator seeded with ``data.split_seed``, the first ``data.num_test_relations`` for meta-test and the
rest for meta-train. On FewRel's public ``val_wiki.json`` (16 relations; the 64-relation training file is
not part of this copy) seed 0 gives the split ``configs/tasks/fewrel.yaml`` lists:

* meta-train (6): P155 follows, P177 crosses, P2094 competition class, P25 mother, P364 original language
  of film or TV show, P921 main subject;
* meta-test (10): P206 located in or next to body of water, P26 spouse, P361 part of, P40 child, P410
  military rank, P412 voice type, P413 position played on team, P463 member of, P59 constellation,
  P641 sport.

Ten meta-test relations are what a 10-way episode needs, which leaves no relations for validation: runs
train for a fixed budget and are judged once, on meta-test. Numbers from this split are not comparable
with the FewRel leaderboard (64 training relations, a hidden test set of 20 other relations).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, POSITIVE, Config, checked
from gnnlm.tasks.fused import FusedTrainingConfig
from gnnlm.tasks.triple_classification import TripleClassificationModelConfig
from gnnlm.train.config import EvaluationConfig, RunConfig


@dataclass
class FewRelModelConfig(TripleClassificationModelConfig):
    """The encoder: a fused LM (triple classification's ``model:`` keys; ``head_inputs`` is unused,
    the representation is the two start markers' final states). ``injection: []`` is the LM alone;
    ``[entity]`` with ``injection_kwargs: {entity: {source: gnn}}`` injects each linked entity's GNN
    state (over its subgraph of the KG) into the tokens of its marked mention.

    Attributes:
        temperature: squared distances are divided by it (:class:`~gnnlm.tasks.fewrel.model.ProtoEncoder`).
    """

    injection: list[str] = field(default_factory=list)
    temperature: float = checked(1.0, POSITIVE, "1.0")


@dataclass
class FewRelDataConfig(Config):
    """The file, the relation split and the KG links.

    Attributes:
        path: a FewRel-format JSON file; default ``$GNNLM_DATA_DIR/fewrel/val_wiki.json``.
        train_relations / test_relations: the meta-train and meta-test relation ids (both or neither;
            disjoint). Empty: drawn with ``split_seed`` (see the module docstring).
        split_seed: seed of the drawn split.
        num_test_relations: meta-test relations of the drawn split (the rest are meta-train).
        train_per_relation: meta-train instances per relation, the first in file order (0: all); with
            ``training.batch_size`` this sets the optimizer steps of an epoch.
        test_per_relation: the meta-test episodes draw from the first this many instances of each
            relation (0: all); each is encoded once per evaluation.
        kg_mapping: Freebase id -> Wikidata record file; default
            ``$GNNLM_DATA_DIR/fb15k-237/entity2wikidata.json``. Read only when the model injects.
        num_hops / max_nodes: the subgraph around an instance's linked entities.
        max_length: tokens of a marked sentence (a marker beyond it reads the first token; counted).
    """

    path: str | None = None
    train_relations: list[str] = field(default_factory=list)
    test_relations: list[str] = field(default_factory=list)
    split_seed: int = 0
    num_test_relations: int = checked(10, AT_LEAST_1, "10")
    train_per_relation: int = checked(0, AT_LEAST_0, "400, or 0 for all")
    test_per_relation: int = checked(0, AT_LEAST_0, "100, or 0 for all")
    kg_mapping: str | None = None
    num_hops: int = checked(1, AT_LEAST_0, "1")
    max_nodes: int = checked(16, AT_LEAST_1, "16")
    max_length: int = checked(96, AT_LEAST_1, "96")

    def files(self) -> dict[str, Path | None]:
        """``{"fewrel", "kg_mapping"}`` paths, defaults resolved from ``$GNNLM_DATA_DIR`` (``None``:
        no default without the variable)."""
        root = os.environ.get("GNNLM_DATA_DIR")

        def pick(value: str | None, *default: str) -> Path | None:
            if value:
                return Path(value).expanduser()
            return Path(root, *default) if root else None

        return {
            "fewrel": pick(self.path, "fewrel", "val_wiki.json"),
            "kg_mapping": pick(self.kg_mapping, "fb15k-237", "entity2wikidata.json"),
        }


@dataclass
class FewRelTrainingConfig(FusedTrainingConfig):
    """:class:`~gnnlm.tasks.fused.FusedTrainingConfig`; a batch is ``batch_size`` meta-train
    instances, an episode of the relations it holds (each instance a query against the others'
    prototypes)."""

    batch_size: int = checked(40, AT_LEAST_1, "40")


@dataclass
class FewRelEvaluationConfig(EvaluationConfig):
    """The fixed evaluation episodes.

    Attributes:
        settings: ``[ways, shots]`` pairs, one episode set each (named ``<ways>w<shots>s``).
        queries: query instances per class.
        episodes: episodes per setting.
        episode_seed: seed of the episodes (the same for every arm and training seed).
        batch_size: sentences encoded at once.
    """

    settings: list[list[int]] = field(default_factory=lambda: [[5, 1], [5, 5], [10, 1]])
    queries: int = checked(5, AT_LEAST_1, "5")
    episodes: int = checked(1000, AT_LEAST_1, "1000")
    episode_seed: int = 1234
    batch_size: int = checked(64, AT_LEAST_1, "64")
    frequency: int = checked(0, AT_LEAST_0, "0 (no validation relations: a fixed budget)")
    metric: str | None = "accuracy"

    def __post_init__(self) -> None:
        if not self.settings or not all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v >= 1 for v in s)
            for s in self.settings
        ):
            raise ValueError(
                f"evaluation.settings must be a non-empty list of [ways, shots] pairs of positive "
                f"integers, got {self.settings!r}"
            )


@dataclass
class FewRelConfig(RunConfig):
    """A few-shot relation classification run (see the module docstring)."""

    task: str = "fewrel"
    dataset: str = "fb15k-237"
    model: FewRelModelConfig = field(default_factory=FewRelModelConfig)
    data: FewRelDataConfig = field(default_factory=FewRelDataConfig)
    training: FewRelTrainingConfig = field(default_factory=FewRelTrainingConfig)
    evaluation: FewRelEvaluationConfig = field(default_factory=FewRelEvaluationConfig)


def setting_name(ways: int, shots: int) -> str:
    """``"5w1s"``."""
    return f"{ways}w{shots}s"


__all__ = [
    "FewRelConfig",
    "FewRelDataConfig",
    "FewRelEvaluationConfig",
    "FewRelModelConfig",
    "FewRelTrainingConfig",
    "setting_name",
]
