"""Partial fine-tuning: freeze parameters by name pattern or the LM's bottom layers, or train LoRA adapters.

Everything here acts on ``requires_grad`` before the optimizer is built: a frozen parameter is in no
optimizer group, gets no gradient and no weight decay, so it stays bit-identical through training.
LoRA adapters come from ``peft`` (``inject_adapter_in_model``: the LM's linear layers are wrapped in
place, so the fused model's layer-by-layer forward runs through them unchanged); :func:`merge_lora`
folds them back into plain linear layers with equal outputs, which is what a finished run saves.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

from torch import nn

from gnnlm.config import ConfigError
from gnnlm.strategies.config import FinetuningConfig, LoraSettings


def language_models(model: nn.Module) -> list[nn.Module]:
    """The :class:`~gnnlm.lm.backbone.TransformerBackbone` modules inside ``model`` (outermost first)."""
    from gnnlm.lm.backbone import TransformerBackbone

    return [m for m in model.modules() if isinstance(m, TransformerBackbone)]


def match_parameters(
    model: nn.Module,
    words: Iterable[str],
    groups: Mapping[str, Iterable[nn.Parameter]] | None = None,
    *,
    where: str = "",
    key: str = "",
) -> set[int]:
    """``id`` of every parameter that ``words`` select: ``all``, a task parameter-group name, or an
    ``fnmatch`` pattern over ``model.named_parameters()`` names.

    Raises:
        ConfigError: a word selects nothing (a typo would otherwise silently train or freeze nothing).
    """
    named = dict(model.named_parameters())
    groups = groups or {}
    chosen: set[int] = set()
    for word in words:
        if word == "all":
            hits = {id(p) for p in named.values()}
        elif word in groups:
            hits = {id(p) for p in groups[word]}
        else:
            hits = {id(p) for name, p in named.items() if fnmatch.fnmatchcase(name, word)}
        if not hits:
            sample = ", ".join(list(named)[:4])
            raise ConfigError(
                f"{where}{key} has {word!r}, which selects no parameter; use all, a parameter "
                f"group ({', '.join(groups) or 'none'}) or a name pattern such as 'fused.lm.*' "
                f"(names look like: {sample}, ...)"
            )
        chosen |= hits
    return chosen


def freeze_lm_layers(model: nn.Module, num_layers: int, *, where: str = "") -> None:
    """Freeze the embeddings and bottom ``num_layers`` layers of every LM in ``model``."""
    if num_layers <= 0:
        return
    lms = language_models(model)
    if not lms:
        raise ConfigError(f"{where}finetuning.freeze_lm_layers: the model has no language model")
    for lm in lms:
        lm.model.get_input_embeddings().requires_grad_(False)
        embeddings = getattr(lm.model, "embeddings", None)  # BERT-style: positions, types, norm
        if isinstance(embeddings, nn.Module):
            embeddings.requires_grad_(False)
        for i in range(min(num_layers, lm.num_layers)):
            lm.layers[i].requires_grad_(False)


def lora_config(settings: LoraSettings, model_type: str):
    """The ``peft.LoraConfig`` of ``settings`` for an LM of ``model_type`` (``bert``, ``gpt2``, ...)."""
    from peft import LoraConfig
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    targets = list(settings.target_modules) or DEFAULTS.get(model_type)
    if not targets:
        raise ConfigError(
            f"finetuning.lora.target_modules: peft has no default for model type {model_type!r}; "
            "name the linear layers, e.g. [query, value]"
        )
    return LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=targets, bias="all" if settings.train_lm_biases else "none",
    )  # fmt: skip


def apply_lora(model: nn.Module, settings: LoraSettings, *, where: str = "") -> int:
    """Wrap the LM(s) of ``model`` with LoRA adapters (in place) and freeze the LMs' own weights.

    Returns the number of adapter parameters added. The rest of the model (GNN, fusion, heads) keeps
    its ``requires_grad``.
    """
    from peft import inject_adapter_in_model

    lms = language_models(model)
    if not lms:
        raise ConfigError(f"{where}finetuning.lora: the model has no language model to adapt")
    added = 0
    for lm in lms:
        before = {id(p) for p in lm.parameters()}
        try:
            inject_adapter_in_model(lora_config(settings, lm.config.model_type), lm.model)
        except ValueError as err:  # peft: target modules not found in the model
            raise ConfigError(f"{where}finetuning.lora: {' '.join(str(err).split())}") from None
        for name, p in lm.named_parameters():
            new = id(p) not in before
            p.requires_grad_(new or (settings.train_lm_biases and name.endswith("bias")))
            added += p.numel() if new else 0
    return added


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter into its base layer and put the plain layer back (equal outputs up to
    float rounding). Returns how many layers were merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, module in wrapped:
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
    return len(wrapped)


def has_lora(model: nn.Module) -> bool:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(isinstance(m, BaseTunerLayer) for m in model.modules())


def apply_partial(model: nn.Module, finetuning: FinetuningConfig, *, where: str = "") -> None:
    """Apply ``finetuning``'s LoRA, ``freeze_lm_layers`` and ``freeze`` patterns to ``model``."""
    if finetuning.lora.r:
        apply_lora(model, finetuning.lora, where=where)
    freeze_lm_layers(model, finetuning.freeze_lm_layers, where=where)
    if finetuning.freeze:
        frozen = match_parameters(model, finetuning.freeze, where=where, key="finetuning.freeze")
        for p in model.parameters():
            if id(p) in frozen:
                p.requires_grad_(False)


def trainable_summary(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared parameters counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
