"""The engine's side of the fine-tuning strategies (``finetuning:``, :mod:`gnnlm.strategies`).

:class:`Strategies` is what the :class:`~gnnlm.train.trainer.Trainer` calls around each optimizer step:

* ``before_step``: staged fine-tuning enters the phase of this step (trainable set, learning rates);
* ``gradients``: the micro-batch's gradients, accumulated into ``.grad`` with the engine's weight:
  plain (the task's loss, backward), adversarial (clean and perturbed passes on the same examples) or
  meta-learning (episodes the task draws, inner loops, the meta-gradient).

Partial fine-tuning (LoRA, frozen layers and patterns) acts before the optimizer is built
(:func:`gnnlm.strategies.partial.apply_partial`). Every strategy draws its randomness from the run's
generator or torch's global one, both of which checkpoints save, so interrupted runs resume exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from gnnlm.config import ConfigError
from gnnlm.strategies.partial import trainable_summary
from gnnlm.train.config import RunConfig
from gnnlm.train.task import StepOutput, Task


class Strategies:
    """The configured strategies of one run (see the module docstring); build with :meth:`build`."""

    def __init__(self, model: nn.Module, task: Task) -> None:
        self.model = model
        self.task = task
        self.phases = None  # gnnlm.strategies.staged.PhaseSchedule
        self.adversarial = None  # gnnlm.strategies.adversarial.AdversarialTraining
        self.meta = None  # gnnlm.strategies.config.MetaConfig when meta-learning
        self.trainable_parameters: dict[str, Any] = {}

    @classmethod
    def build(
        cls,
        config: RunConfig,
        model: nn.Module,
        task: Task,
        groups: Mapping[str, Iterable[nn.Parameter]],
        steps_per_epoch: int,
        run_lrs: Sequence[float],
        scheduler: Any,
        interval: str,
    ) -> Strategies:
        f, where = config.finetuning, config.at("finetuning")
        self = cls(model, task)
        trainable, total = trainable_summary(model)
        self.trainable_parameters = {"trainable": trainable, "total": total}
        if f.phases:
            from gnnlm.strategies.staged import PhaseSchedule, check_phase_scheduler

            check_phase_scheduler(scheduler, interval, where)
            groups = {name: list(params) for name, params in groups.items()}
            self.phases = PhaseSchedule(
                f.phases, model, groups, steps_per_epoch, run_lrs, where=where
            )
            self.trainable_parameters["phases"] = [
                self.phases.trainable_count(p) for p in self.phases.phases
            ]
        if f.adversarial.method and f.meta.method:
            raise ConfigError(
                f"{where}finetuning.adversarial and finetuning.meta do not compose (an episode's "
                "inner loop has no adversarial pass); set one of them to null"
            )
        if f.adversarial.method:
            from gnnlm.strategies.adversarial import AdversarialTraining

            self.adversarial = AdversarialTraining(f.adversarial, model)
        if f.meta.method:
            if type(task).sample_episode is Task.sample_episode:
                raise ConfigError(
                    f"{where}finetuning.meta: task {task.name or type(task).__name__} draws no "
                    "episodes (it has no sample_episode method)"
                )
            if config.training.accumulation_steps != 1:
                raise ConfigError(
                    f"{where}finetuning.meta: one optimizer step is one meta-batch of episodes; "
                    "set training.accumulation_steps: 1 (meta_batch_size sets the episodes per step)"
                )
            self.meta = f.meta
        return self

    def describe(self) -> str:
        """One line for the start of a run: the trainable-parameter count (per phase when staged)."""
        t = self.trainable_parameters
        line = f"trainable parameters: {t['trainable']:,} of {t['total']:,}"
        line += f" ({100 * t['trainable'] / max(t['total'], 1):.2f}%)"
        if "phases" in t:
            line += "; per phase: " + ", ".join(f"{n:,}" for n in t["phases"])
        return line

    # -- per step ----------------------------------------------------------------------------------
    def before_step(self, step: int, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """Called before the first micro-batch of optimizer step ``step`` (0-based)."""
        if self.phases is not None:
            self.phases.apply(step, optimizer, scheduler)

    def gradients(
        self, indices: Tensor, generator: torch.Generator, scale: float
    ) -> Tensor | StepOutput:
        """Accumulate the gradients of training examples ``indices`` times ``scale`` into ``.grad`` and
        return the task's (clean) output for logging."""
        task, model = self.task, self.model
        if self.meta is not None:
            return self._meta_gradients(generator)
        if self.adversarial is not None:
            state = generator.get_state()

            def run_step() -> Tensor | StepOutput:
                generator.set_state(state)  # every pass draws the same examples and negatives
                return task.training_step(model, indices, generator)

            return self.adversarial.backward(run_step, scale)
        out = task.training_step(model, indices, generator)
        loss = out.loss if isinstance(out, StepOutput) else out
        if scale != 1.0:
            loss = loss * scale
        loss.backward()
        return out

    def _meta_gradients(self, generator: torch.Generator) -> StepOutput:
        from gnnlm.strategies.meta import meta_gradients

        task, model, meta = self.task, self.model, self.meta
        episodes = [task.sample_episode(generator, meta) for _ in range(meta.meta_batch_size)]

        def loss_fn(indices: Tensor) -> Tensor:
            out = task.training_step(model, indices, generator)
            return out.loss if isinstance(out, StepOutput) else out

        params = [p for p in model.parameters() if p.requires_grad]
        logs = meta_gradients(model, params, episodes, loss_fn, meta)
        return StepOutput(torch.tensor(logs["meta_query_loss"]), logs)
