"""Finding an encoder from a config string, a class or an instance, and checking the protocol.

``encoder_resolver`` is a :class:`~gnnlm.utils.registry.DottedPathResolver` over :class:`GraphEncoder`.
Like every resolver built from a fixed list, it finds a user's class *by name* only after the user
registers it::

    from gnnlm.encoders import encoder_resolver
    encoder_resolver.register(MyGNN)          # now "mygnn" works in a config

Without registering, a config can always name the class by its import path (``mypkg.encoders:MyGNN``).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from gnnlm.encoders.base import EncoderOutput, GraphEncoder
from gnnlm.encoders.compgcn import CompGCN
from gnnlm.encoders.pyg import ModuleEncoder, PyGConvEncoder, lookup_pyg_conv
from gnnlm.encoders.rgcn import RGCN
from gnnlm.utils.modules import eval_mode
from gnnlm.utils.registry import DottedPathResolver, import_object, is_dotted_path

encoder_resolver: DottedPathResolver[GraphEncoder] = DottedPathResolver(
    [RGCN, CompGCN], base=GraphEncoder, suffix=""
)

_LAYER_ARGS = ("i", "x", "edge_index", "edge_type", "edge_attr", "relation")


class EncoderProtocolError(TypeError):
    """A plugged-in encoder does not meet the :class:`GraphEncoder` protocol."""


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    return f"{type(obj).__module__}.{type(obj).__qualname__} instance"


def _import_path(spec: str) -> Any:
    """What ``"pkg.mod:Name"`` names: a class or an instance (refused in an untrusted saved folder)."""
    try:
        return import_object(spec)
    except ImportError as err:
        raise ValueError(f"encoder {spec!r}: {err}") from err


def lookup_encoder(spec: str | type) -> type[GraphEncoder]:
    """The encoder *class* for a spec string or class (no instantiation).

    Accepted: a registered name (``"rgcn"``, ``"compgcn"``), ``"pyg:<ConvName>"``, ``"pkg.mod:Class"``,
    a :class:`GraphEncoder` subclass, or a PyG ``MessagePassing`` subclass (wrapped by
    :class:`~gnnlm.encoders.pyg.PyGConvEncoder`).
    """
    if isinstance(spec, str):
        if spec.startswith("pyg:"):
            return PyGConvEncoder.specialise(lookup_pyg_conv(spec[4:]))
        if is_dotted_path(spec):
            return lookup_encoder(_import_path(spec))
        try:
            return encoder_resolver.lookup(spec)
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"unknown encoder {spec!r}; registered: {sorted(encoder_resolver.lookup_dict)}. "
                "Use 'pkg.module:Class' for your own class (or encoder_resolver.register(Class) "
                "first), or 'pyg:<ConvName>' for a stock PyG conv"
            ) from err
    if isinstance(spec, type):
        if issubclass(spec, GraphEncoder):
            check_encoder_class(spec)
            return spec
        if issubclass(spec, MessagePassing):
            return PyGConvEncoder.specialise(spec)
        if issubclass(spec, nn.Module):  # e.g. torch_geometric.nn.models:GCN
            _check_forward(spec)
            return ModuleEncoder.specialise(spec)
    raise EncoderProtocolError(
        f"expected an encoder: a GraphEncoder subclass (gnnlm.encoders.GraphEncoder), a PyG "
        f"MessagePassing class, an nn.Module class whose forward takes (x, edge_index), a "
        f"registered name, 'pkg.module:Class' or 'pyg:<ConvName>'; found {_describe(spec)}, "
        "which is none of these"
    )


def check_encoder_class(cls: type) -> None:
    """Check the static protocol of an encoder class; raise :class:`EncoderProtocolError` if broken."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise EncoderProtocolError(
            f"expected an nn.Module subclass of gnnlm.encoders.GraphEncoder, found {_describe(cls)}"
        )
    for name in ("layer_forward", "forward"):
        fn = getattr(cls, name, None)
        if not callable(fn):
            raise EncoderProtocolError(f"{_describe(cls)} has no callable {name}()")
        params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
        try:
            inspect.Signature(params).bind(*([None] * (6 if name == "layer_forward" else 5)))
        except TypeError as err:
            expected = _LAYER_ARGS if name == "layer_forward" else _LAYER_ARGS[1:]
            raise EncoderProtocolError(
                f"{_describe(cls)}.{name}{inspect.signature(fn)} does not accept the protocol's "
                f"arguments ({', '.join(expected)}): {err}"
            ) from err
    for flag in ("supports_edge_type", "supports_edge_attr", "updates_relations"):
        if not isinstance(getattr(cls, flag, None), bool):
            raise EncoderProtocolError(
                f"{_describe(cls)}.{flag} must be a class-level bool, found "
                f"{getattr(cls, flag, None)!r}"
            )


def check_encoder(encoder: nn.Module) -> GraphEncoder:
    """Check an encoder instance: an ``nn.Module``, the protocol's methods, a non-empty ``layers``."""
    if not isinstance(encoder, nn.Module):
        raise EncoderProtocolError(
            f"expected an nn.Module (a gnnlm.encoders.GraphEncoder), found {_describe(encoder)}"
        )
    if not isinstance(encoder, GraphEncoder):
        return ModuleEncoder.wrap(_check_plain_module(encoder))
    check_encoder_class(type(encoder))
    layers = getattr(encoder, "layers", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise EncoderProtocolError(
            f"{_describe(encoder)}: self.layers must be a non-empty nn.ModuleList (one entry per "
            f"layer, so fusion can step through them), found {type(layers).__name__}"
            + (f" of length {len(layers)}" if isinstance(layers, nn.ModuleList) else "")
        )
    return encoder


def _check_plain_module(module: nn.Module) -> nn.Module:
    _check_forward(type(module), _describe(module))
    return module


def _check_forward(cls: type, described: str | None = None) -> None:
    params = list(inspect.signature(cls.forward).parameters)[1:]
    if params[:2] != ["x", "edge_index"]:
        raise EncoderProtocolError(
            f"{described or _describe(cls)} is not a GraphEncoder and its forward({', '.join(params)}) "
            "does not start with (x, edge_index); subclass gnnlm.encoders.GraphEncoder or wrap it"
        )


def resolve_encoder(spec: str | type | nn.Module, **kwargs: Any) -> GraphEncoder:
    """Build (or check) an encoder from any of the plug-in forms.

    Args:
        spec: a registered name (``"rgcn"``, ``"compgcn"``), ``"pkg.module:Class"``, a stock PyG conv as
            ``"pyg:GATConv"``, a :class:`GraphEncoder` or ``MessagePassing`` subclass, or an instance (a
            :class:`GraphEncoder`, or any module with ``forward(x, edge_index, ...)``, which is wrapped).
        **kwargs: constructor arguments (not allowed with an instance).

    Raises:
        EncoderProtocolError: the class or instance does not meet the protocol (the message says what
            was expected and what was found).
        ValueError: an unknown name or an import path that does not resolve.
    """
    if isinstance(spec, nn.Module):
        if kwargs:
            raise ValueError(
                f"encoder given as an instance ({_describe(spec)}); constructor arguments "
                f"{sorted(kwargs)} cannot apply to it"
            )
        return check_encoder(spec)
    if is_dotted_path(spec):
        target = _import_path(spec)
        if isinstance(target, nn.Module):
            return resolve_encoder(target, **kwargs)
        if isinstance(target, type) and issubclass(target, nn.Module):
            if not issubclass(target, (GraphEncoder, MessagePassing)):
                return check_encoder(_check_plain_module(_instantiate(target, kwargs)))
        spec = target
    cls = lookup_encoder(spec)
    return check_encoder(_instantiate(cls, kwargs))


def _instantiate(cls: type, kwargs: dict[str, Any]) -> nn.Module:
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as err:
        raise TypeError(
            f"cannot build {cls.__name__} with arguments {sorted(kwargs)}: {err}; its signature is "
            f"{cls.__name__}{inspect.signature(cls)}"
        ) from err
    return cls(**kwargs)


def constructor_keywords(cls: type) -> tuple[frozenset[str], bool]:
    """``(keyword arguments cls(...) names, whether it also takes any other keyword)``.

    A wrapped PyG conv names everything it accepts (its own, the conv's and ``MessagePassing``'s
    arguments); a wrapped module (``torch_geometric.nn.models:GCN``) names its constructor's arguments.
    """
    if isinstance(cls, type) and issubclass(cls, (PyGConvEncoder, ModuleEncoder)):
        return cls.keyword_arguments()
    params = list(inspect.signature(cls).parameters.values())
    named = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def filter_kwargs(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``cls``'s constructor accepts (all of them with ``**kwargs``).

    A wrapped module (:class:`~gnnlm.encoders.pyg.ModuleEncoder`) gets only the arguments its
    constructor names: its ``**kwargs`` go to its convs (``GCN``'s to ``GCNConv``), which would not
    take ``num_relations`` or ``relation_channels``.
    """
    named, any_keyword = constructor_keywords(cls)
    if any_keyword and not issubclass(cls, ModuleEncoder):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in named}


def probe_encoder(
    encoder: GraphEncoder,
    *,
    in_channels: int,
    num_relations: int,
    relation_channels: int | None,
    expected_channels: int,
    expected_relation_channels: int | None = None,
) -> EncoderOutput:
    """Run ``encoder`` on a 4-node graph and check output types and shapes.

    Returns:
        The probe's output (e.g. to read the width of the relations an encoder returns).

    Raises:
        EncoderProtocolError: naming what was expected and what was found.
    """
    gen = torch.Generator().manual_seed(0)
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    num_nodes = 4
    x = torch.randn(num_nodes, in_channels, generator=gen).to(device)
    edge_index = torch.tensor([[0, 1, 2, 3, 1, 2, 3, 0], [1, 2, 3, 0, 0, 1, 2, 3]], device=device)
    edge_type = (torch.arange(8) % max(num_relations, 1)).to(device)
    if num_relations % 2 == 0 and num_relations >= 2:  # inverse edges carry inverse relation ids
        half = num_relations // 2
        edge_type = torch.cat([edge_type[:4] % half, edge_type[:4] % half + half])
    relation = None
    if relation_channels is not None:
        relation = torch.randn(num_relations, relation_channels, generator=gen).to(device)
    name = type(encoder).__name__
    try:
        with eval_mode(encoder):
            out = encoder(x, edge_index, edge_type, None, relation)
    except Exception as err:
        raise EncoderProtocolError(
            f"{name} failed on a 4-node probe graph (x [4, {in_channels}], edge_index [2, 8], "
            f"edge_type [8] in [0, {num_relations}), relation "
            f"{None if relation is None else list(relation.shape)}): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(out, EncoderOutput):
        raise EncoderProtocolError(
            f"{name}.forward must return gnnlm.encoders.EncoderOutput, found {type(out).__name__}"
        )
    _check_shape(name, "x", out.x, [num_nodes, expected_channels])
    if encoder.updates_relations:
        width = expected_relation_channels
        if width is None and isinstance(out.relation, Tensor) and out.relation.dim() == 2:
            width = out.relation.size(1)  # any width: the caller adapts to it
        _check_shape(name, "relation", out.relation, [num_relations, width])
    return out


def _check_shape(name: str, what: str, value: Tensor | None, expected: list[int]) -> None:
    found = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
    if found != expected:
        raise EncoderProtocolError(
            f"{name} returned {what} of shape {found} on the probe graph; expected {expected} "
            "(check out_channels)"
        )
