"""Checkpoints that never unpickle: atomic writes, safetensors tensors, JSON for everything else.

A resumable training checkpoint is ONE safetensors file (so replacing it is one atomic ``os.replace``):
tensors under ``model.*`` (current weights), ``best.*`` (best weights so far), ``optimizer.*`` (optimizer
state tensors) and ``rng.*`` (torch / sampler / numpy generator states); the safetensors ``metadata``
holds a JSON document with the epoch, the early-stopping state, the optimizer's param groups, the
scheduler state and the Python RNG state. Loading reads tensors with :mod:`safetensors` only, so a
tampered file can at worst hold wrong numbers, never run code.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_dumps
from torch import Tensor, nn

from gnnlm.utils.atomic import (  # noqa: F401 (re-exported: the one atomic writer)
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)

_STATE_KEY = "gnnlm_state"
#: leading bytes of formats gnnlm refuses to load: a zip (``torch.save``) and a raw pickle stream.
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read (missing, truncated, pickled, or for a different model)."""


# -- safetensors -----------------------------------------------------------------------------------
def save_tensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, Any] | None = None
) -> None:
    """Atomically write ``tensors`` (and a JSON-serialisable ``metadata`` document) as safetensors."""
    meta = {_STATE_KEY: json.dumps(metadata)} if metadata is not None else None
    data = safetensors_dumps(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta
    )
    atomic_write_bytes(path, data)


def load_tensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """Read a safetensors file: ``(tensors, metadata)``. Refuses pickles and ``torch.save`` files.

    Raises:
        CheckpointError: the file is missing, pickled, or not a valid safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"{path}: this is a pickle / torch.save file; gnnlm never unpickles checkpoints "
            "(pickles can run arbitrary code). Convert the weights to safetensors."
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
            raw = (f.metadata() or {}).get(_STATE_KEY)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    return tensors, (json.loads(raw) if raw is not None else None)


def module_tensors(module: nn.Module, prefix: str = "") -> dict[str, Tensor]:
    """``module.state_dict()`` with tensors that share memory cloned (safetensors stores no aliases)."""
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in module.state_dict().items():
        tag = (
            (value.untyped_storage().data_ptr(), value.storage_offset()) if value.numel() else None
        )
        out[prefix + key] = value.clone() if tag in seen else value
        if tag is not None:
            seen.add(tag)
    return out


def load_module_tensors(
    module: nn.Module, tensors: dict[str, Tensor], prefix: str = "", *, source: str
) -> None:
    """Copy ``tensors[prefix + key]`` into ``module``; a missing/extra/mis-shaped key is an error."""
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{source}: weights do not fit the model (missing: {missing[:5]}, unexpected: {extra[:5]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(expected[key].shape)}"
            )
    module.load_state_dict(state)


# -- optimizer / scheduler / RNG -------------------------------------------------------------------
def _split_tensors(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """Replace tensors in a nested dict/list by ``{"__tensor__": key}`` references."""
    if isinstance(obj, Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {str(k): _split_tensors(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join_tensors(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_tensors(v, tensors) for v in obj]
    return obj


def optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """JSON-able optimizer state; its tensors go into ``tensors`` under ``optimizer.*``."""
    state = optimizer.state_dict()
    return {
        "state": _split_tensors(state["state"], "optimizer.state", tensors),
        "param_groups": _split_tensors(state["param_groups"], "optimizer.param_groups", tensors),
    }


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, doc: dict[str, Any], tensors: dict[str, Tensor]
) -> None:
    state = {int(k): v for k, v in _join_tensors(doc["state"], tensors).items()}
    groups = _join_tensors(doc["param_groups"], tensors)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state(generator: torch.Generator | None, tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Capture torch, ``generator``, numpy and Python RNG states (tensors under ``rng.*``)."""
    tensors["rng.torch"] = torch.get_rng_state()
    if generator is not None:
        tensors["rng.generator"] = generator.get_state()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    return {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }


def load_rng_state(
    generator: torch.Generator | None, doc: dict[str, Any], tensors: dict[str, Tensor]
) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if generator is not None:
        generator.set_state(tensors["rng.generator"])
    kind, pos, has_gauss, cached = doc["numpy"]
    np.random.set_state(
        (kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached)
    )
    version, internal, gauss = doc["python"]
    random.setstate((version, tuple(internal), gauss))
