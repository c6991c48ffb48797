"""The ``finetuning:`` section of every run: how the model is updated (any task).

Strategies compose: every field below is independent, and the defaults are plain full fine-tuning::

    finetuning:
      freeze: ["fused.lm.*"]              # parameter-name patterns (fnmatch) kept frozen
      freeze_lm_layers: 4                 # the LM's embeddings and bottom 4 layers kept frozen
      lora: {r: 8, alpha: 16}             # LoRA adapters on the LM through peft (r: 0 = off)
      phases:                             # staged: each phase's trainable set and learning rates
        - {steps: 100, trainable: [gates, head]}
        - {epochs: 1, trainable: [head, "fused.lm.layers.5.*"], lr: {lm: 1.0e-5}}
        - {trainable: [all]}              # the last phase runs to the end
      adversarial: {method: fgm, epsilon: 1.0}     # fgm | pgd | freelb on the word embeddings
      meta: {method: reptile, inner_steps: 3, inner_lr: 0.01, meta_batch_size: 4, shots: 5}

A parameter name is the one of ``model.named_parameters()``; a word in ``trainable`` is a parameter group
of the task (``lm``, ``gnn``, ``fusion``, ``gates``, ``head`` for the fused-LM tasks), ``all``, or a
name pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gnnlm.config import AT_LEAST_0, AT_LEAST_1, NON_NEGATIVE, POSITIVE, Config, checked

ADVERSARIAL_METHODS = (None, "fgm", "pgd", "freelb")
META_METHODS = (None, "reptile", "fomaml")


@dataclass
class LoraSettings(Config):
    """LoRA adapters (Hu et al., 2022) on the task's language model(s), through ``peft``.

    Attributes:
        r: adapter rank (0: no LoRA).
        alpha: scaling numerator (the update is ``alpha / r * B A x``).
        dropout: dropout on the adapter's input.
        target_modules: names of the LM's linear layers that get adapters (``[]``: peft's default
            for the model type, e.g. ``query``/``value`` for BERT).
        train_lm_biases: also train the LM's biases (``none`` in peft's terms when false).
    """

    r: int = checked(0, AT_LEAST_0, "8, or 0 for no LoRA")
    alpha: float = checked(16.0, POSITIVE, "16")
    dropout: float = checked(0.0, NON_NEGATIVE, "0.05")
    target_modules: list[str] = field(default_factory=list)
    train_lm_biases: bool = False


@dataclass
class PhaseConfig(Config):
    """One phase of staged fine-tuning.

    Attributes:
        steps: optimizer steps of this phase (with ``epochs``: both add up).
        epochs: epochs of this phase. A phase with neither runs to the end (only the last may).
        trainable: what trains: task parameter groups, ``all``, or parameter-name patterns.
        lr: learning rates of this phase, per task parameter group (``{head: 1.0e-3}``) or ``default``
            for every group not named; groups left out keep the run's ``training`` rates.
    """

    steps: int = checked(0, AT_LEAST_0, "100")
    epochs: int = checked(0, AT_LEAST_0, "1")
    trainable: list[str] = field(default_factory=lambda: ["all"])
    lr: dict[str, float] = field(default_factory=dict)


@dataclass
class AdversarialConfig(Config):
    """Adversarial training on embedding outputs within an epsilon ball (L2 per example).

    Attributes:
        method: ``null`` (off), ``fgm`` (Miyato et al., 2017: one step along the gradient), ``pgd``
            (Madry et al., 2018: ``steps`` projected ascent steps, the loss of the last) or ``freelb``
            (Zhu et al., 2020: ``steps`` ascent steps from a random start, gradients averaged).
        epsilon: radius of the ball.
        alpha: ascent step size (pgd, freelb).
        steps: ascent steps (pgd, freelb).
        targets: which embeddings are perturbed: ``word_embeddings`` (the LM's token embeddings) and/or
            ``entity_embeddings`` (the fused model's node features), or module-name suffixes.
        weight: the adversarial loss's weight beside the clean loss (fgm, pgd).
    """

    method: str | None = None
    epsilon: float = checked(1.0, POSITIVE, "1.0")
    alpha: float = checked(0.3, POSITIVE, "0.3")
    steps: int = checked(3, AT_LEAST_1, "3")
    targets: list[str] = field(default_factory=lambda: ["word_embeddings"])
    weight: float = checked(1.0, NON_NEGATIVE, "1.0")

    def __post_init__(self) -> None:
        if self.method not in ADVERSARIAL_METHODS:
            raise ValueError(
                f"finetuning.adversarial.method must be null, fgm, pgd or freelb, got {self.method!r}"
            )


@dataclass
class MetaConfig(Config):
    """Meta-learning over episodes the task draws (``Task.sample_episode``).

    Attributes:
        method: ``null`` (off), ``reptile`` (Nichol et al., 2018) or ``fomaml`` (first-order MAML,
            Finn et al., 2017).
        inner_steps: SGD steps on an episode's support set.
        inner_lr: their learning rate.
        meta_batch_size: episodes per optimizer (outer) step.
        ways: classes per episode (tasks that have classes).
        shots: support examples per class.
        queries: query examples per class.
    """

    method: str | None = None
    inner_steps: int = checked(3, AT_LEAST_1, "3")
    inner_lr: float = checked(0.01, POSITIVE, "0.01")
    meta_batch_size: int = checked(4, AT_LEAST_1, "4")
    ways: int = checked(2, AT_LEAST_1, "5")
    shots: int = checked(5, AT_LEAST_1, "5")
    queries: int = checked(5, AT_LEAST_1, "5")

    def __post_init__(self) -> None:
        if self.method not in META_METHODS:
            raise ValueError(
                f"finetuning.meta.method must be null, reptile or fomaml, got {self.method!r}"
            )


@dataclass
class FinetuningConfig(Config):
    """How the model is updated (see the module docstring); the defaults train everything."""

    freeze: list[str] = field(default_factory=list)
    freeze_lm_layers: int = checked(0, AT_LEAST_0, "4, or 0")
    lora: LoraSettings = field(default_factory=LoraSettings)
    phases: list[PhaseConfig] = field(default_factory=list)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)

    def __post_init__(self) -> None:
        for k, phase in enumerate(self.phases[:-1]):
            if not (phase.steps or phase.epochs):
                raise ValueError(
                    f"finetuning.phases[{k}] sets neither steps nor epochs; only the last phase may "
                    "run to the end"
                )
