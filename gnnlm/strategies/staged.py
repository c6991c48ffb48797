"""Staged fine-tuning: phases that switch what trains and at which learning rates, at set steps.

The optimizer is built once over every parameter that any phase trains. A phase sets ``requires_grad``
of the others to false, so they get no gradient: ``torch.optim`` optimizers skip a parameter whose
``grad`` is ``None`` (no update, no weight decay, no moment decay), and it stays bit-identical while its
phase is off. Which phase is active is a function of the optimizer step alone, so a resumed run
re-enters the right phase.

Learning rates: a phase's ``lr`` sets the base rate of the named optimizer groups; a per-step schedule
(warmup, decay) keeps multiplying the base rate, as it does without phases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from gnnlm.config import ConfigError
from gnnlm.strategies.config import PhaseConfig
from gnnlm.strategies.partial import match_parameters


@dataclass
class Phase:
    """A phase resolved against a model: its steps ``[start, end)``, trainable ids and group rates."""

    index: int
    start: int
    end: float  # math.inf for the last phase
    trainable: set[int]
    lr: dict[str, float]


class PhaseSchedule:
    """The phases of ``finetuning.phases`` over a model and its optimizer.

    Args:
        phases: the configured phases.
        model: the model (its parameters that require a gradient now are the candidates; anything
            frozen by ``freeze`` / LoRA stays frozen in every phase).
        groups: the task's named parameter groups (words of ``trainable`` and keys of ``lr``).
        steps_per_epoch: optimizer steps per epoch (a phase's ``epochs`` in steps).
        run_lrs: the run's own base learning rate of each optimizer group, in order (what a phase
            that does not name a group gives it; read from the config, not the optimizer, whose rates
            a resumed run restores as the last phase left them).
        where: the config's location, for errors.
    """

    def __init__(
        self,
        phases: Sequence[PhaseConfig],
        model: nn.Module,
        groups: Mapping[str, Iterable[nn.Parameter]],
        steps_per_epoch: int,
        run_lrs: Sequence[float],
        *,
        where: str = "",
    ) -> None:
        self.model = model
        self.run_lrs = list(run_lrs)
        self.candidates = [p for p in model.parameters() if p.requires_grad]
        allowed = {id(p) for p in self.candidates}
        self.phases: list[Phase] = []
        start = 0
        for k, phase in enumerate(phases):
            key = f"finetuning.phases[{k}]"
            chosen = match_parameters(
                model, phase.trainable, groups, where=where, key=f"{key}.trainable"
            )
            unknown = sorted(set(phase.lr) - set(groups) - {"default"})
            if unknown:
                raise ConfigError(
                    f"{where}{key}.lr names {', '.join(unknown)}; use the task's parameter groups "
                    f"({', '.join(groups)}) or default"
                )
            length = phase.steps + phase.epochs * steps_per_epoch
            end = start + length if (phase.steps or phase.epochs) else float("inf")
            self.phases.append(Phase(k, start, end, chosen & allowed, dict(phase.lr)))
            start = end
        self.current: Phase | None = None

    def phase_at(self, step: int) -> Phase:
        """The phase that trains optimizer step ``step`` (0-based); after the last phase's end, the last."""
        for phase in self.phases:
            if step < phase.end:
                return phase
        return self.phases[-1]

    def apply(self, step: int, optimizer: torch.optim.Optimizer, scheduler=None) -> bool:
        """Enter the phase of ``step`` if it is not the current one; returns whether it changed."""
        phase = self.phase_at(step)
        if self.current is not None and phase.index == self.current.index:
            return False
        for p in self.candidates:
            p.requires_grad_(id(p) in phase.trainable)
        for i, group in enumerate(optimizer.param_groups):
            name = group.get("name", "default")
            base = phase.lr.get(name, phase.lr.get("default", self.run_lrs[i]))
            if scheduler is not None and hasattr(scheduler, "base_lrs"):
                factor = group["lr"] / scheduler.base_lrs[i] if scheduler.base_lrs[i] else 1.0
                scheduler.base_lrs[i] = base
                group["initial_lr"] = base
                group["lr"] = base * factor
            else:
                group["lr"] = base
        self.current = phase
        return True

    def trainable_count(self, phase: Phase) -> int:
        return sum(p.numel() for p in self.candidates if id(p) in phase.trainable)


def check_phase_scheduler(scheduler, interval: str, where: str = "") -> None:
    """Phases set base learning rates: fine with no schedule or a per-step (``LambdaLR``) one."""
    if scheduler is not None and interval != "step":
        raise ConfigError(
            f"{where}finetuning.phases set learning rates per phase; combine them with a per-step "
            "training.scheduler (linear, cosine_with_warmup, ...) or none"
        )
