"""Any stock PyG conv (``"pyg:GATConv"``) or any ``forward(x, edge_index, ...)`` module as an encoder.

No new class per conv: :meth:`PyGConvEncoder.specialise` reads the conv's ``forward`` signature once and
returns a cached subclass whose class-level capability flags say how to feed it:

* a conv whose ``forward`` takes ``edge_type`` (``RGCNConv``, ``RGATConv``, ``FiLMConv``) gets the edge
  types, and ``num_relations`` in its constructor;
* otherwise a conv whose ``forward`` takes ``edge_attr`` (``GATConv``, ``GINEConv``, ``TransformerConv``,
  ``GENConv``) gets the relation embeddings gathered per edge, ``relation[edge_type]``, and
  ``edge_dim=relation_channels`` in its constructor;
* any other conv (``GCNConv``, ``SAGEConv``) sees the graph without relation information.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch_geometric.nn as pyg_nn
from torch import Tensor, nn
from torch_geometric.nn import MLP, MessagePassing
from torch_geometric.nn.models.basic_gnn import BasicGNN

from gnnlm.encoders.base import GraphEncoder


def _params(fn: Callable) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


def _keywords(fn: Callable, *, skip: tuple[str, ...] = ()) -> tuple[frozenset[str], bool]:
    """``(names passable by keyword, whether fn also takes **kwargs)`` of a constructor."""
    params = list(_params(fn).values())[1:]  # drop self
    named = frozenset(
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip
    )
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def lookup_pyg_conv(name: str) -> type[MessagePassing]:
    """``"GATConv"`` -> ``torch_geometric.nn.GATConv``, with a clear error for unknown names."""
    conv = getattr(pyg_nn, name, None)
    if not (isinstance(conv, type) and issubclass(conv, MessagePassing)):
        known = sorted(
            n for n in dir(pyg_nn) if n.endswith("Conv") and isinstance(getattr(pyg_nn, n), type)
        )
        raise ValueError(
            f"'pyg:{name}': torch_geometric.nn has no MessagePassing layer named {name!r}; "
            f"known convs: {', '.join(known)}"
        )
    return conv


class PyGConvEncoder(GraphEncoder):
    """A stack of ``num_layers`` copies of one stock PyG conv.

    Use :meth:`specialise` (or ``resolve_encoder("pyg:GATConv", ...)``) to get the class for a conv; the
    base class itself has no conv.

    Args:
        in_channels: input width.
        out_channels: output width.
        num_relations: number of edge types (passed to convs whose constructor takes it).
        hidden_channels: width between layers (default ``out_channels``).
        num_layers: number of conv layers.
        relation_channels: width of the relation embeddings given as ``edge_attr`` (the conv's
            ``edge_dim``; default ``in_channels``).
        dropout: feature dropout between layers.
        act: activation between layers.
        act_last: also apply activation and dropout after the last layer.
        **conv_kwargs: passed to every conv (e.g. ``heads=4`` for ``GATConv``: hidden layers then
            concatenate ``heads`` outputs of ``hidden_channels // heads``, the last layer averages).
    """

    conv_cls: ClassVar[type[MessagePassing] | None] = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_relations: int | None = None,
        *,
        hidden_channels: int | None = None,
        num_layers: int = 2,
        relation_channels: int | None = None,
        dropout: float = 0.0,
        act: str | Callable | None = "relu",
        act_last: bool = False,
        **conv_kwargs: Any,
    ) -> None:
        super().__init__(act=act, dropout=dropout, act_last=act_last)
        conv = type(self).conv_cls
        if conv is None:
            raise TypeError(
                "PyGConvEncoder needs a conv: use PyGConvEncoder.specialise(GATConv) or "
                "resolve_encoder('pyg:GATConv', ...)"
            )
        init = _params(conv.__init__)
        valid, _ = type(self).keyword_arguments()
        unknown = sorted(set(conv_kwargs) - valid)
        if unknown:
            raise TypeError(
                f"pyg:{conv.__name__}: unknown keyword argument(s) {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(valid))}"
            )
        hidden_channels = hidden_channels or out_channels
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        heads = int(conv_kwargs.get("heads", 1))
        layers = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            kwargs = dict(conv_kwargs)
            last = i == num_layers - 1
            if heads > 1 and "concat" in init and "concat" not in conv_kwargs:
                if last:
                    kwargs["concat"] = False
                else:
                    if d_out % heads:
                        raise ValueError(
                            f"{conv.__name__}: hidden_channels={d_out} must be divisible by "
                            f"heads={heads}"
                        )
                    d_out //= heads
            if "num_relations" in init and num_relations is not None:
                kwargs.setdefault("num_relations", num_relations)
            if self.supports_edge_attr and "edge_dim" in init:
                kwargs.setdefault("edge_dim", relation_channels or in_channels)
            if "in_channels" in init:
                layers.append(conv(d_in, d_out, **kwargs))
            elif "nn" in init:  # GINConv / GINEConv style: the conv wraps an MLP
                layers.append(conv(MLP([d_in, d_out, d_out], norm=None), **kwargs))
            else:
                raise TypeError(
                    f"don't know how to build {conv.__name__}{inspect.signature(conv.__init__)}: "
                    "expected an in_channels/out_channels or an nn argument; write a GraphEncoder "
                    "subclass for it"
                )
        self.layers = nn.ModuleList(layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    _specialised: ClassVar[dict[type, type[PyGConvEncoder]]] = {}

    @classmethod
    def keyword_arguments(cls) -> tuple[frozenset[str], bool]:
        """``(every keyword the constructor accepts, False)``: its own, the conv's and (when the conv
        forwards ``**kwargs``) ``MessagePassing``'s; the widths it sets per layer are not among them."""
        own, _ = _keywords(PyGConvEncoder.__init__)
        if cls.conv_cls is None:
            return own, False
        conv, open_ = _keywords(cls.conv_cls.__init__, skip=("in_channels", "out_channels", "nn"))
        if open_:
            conv |= _keywords(MessagePassing.__init__)[0]
        return own | conv, False

    @classmethod
    def specialise(cls, conv: type[MessagePassing] | str) -> type[PyGConvEncoder]:
        """The encoder class for ``conv`` (a class or a ``torch_geometric.nn`` name), cached."""
        if isinstance(conv, str):
            conv = lookup_pyg_conv(conv)
        if conv not in cls._specialised:
            fwd = _params(conv.forward)
            edge_type = "edge_type" in fwd
            flags = {
                "conv_cls": conv,
                "supports_edge_type": edge_type,
                "supports_edge_attr": "edge_attr" in fwd and not edge_type,
                "__module__": __name__,
                "__doc__": f"{conv.__name__} layers stacked as a GraphEncoder.",
            }
            cls._specialised[conv] = type(f"PyG{conv.__name__}Encoder", (cls,), flags)
        return cls._specialised[conv]

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def extra_repr(self) -> str:
        conv = type(self).conv_cls
        return f"conv={conv.__name__ if conv else None}, num_layers={self.num_layers}"


class ModuleEncoder(GraphEncoder):
    """Wraps any module with ``forward(x, edge_index, ...)`` (e.g. PyG's ``GCN`` model) as one layer.

    Relation information is passed by the same signature rules as :class:`PyGConvEncoder` (a PyG
    ``BasicGNN`` model says itself whether it uses ``edge_attr``); the module is responsible for its own
    activations. :meth:`specialise` gives the encoder *class* for a module class (what
    ``encoder: torch_geometric.nn.models:GCN`` in a config resolves to): its constructor builds the
    module from keyword arguments.

    Args:
        module: the module to wrap (``None``: build ``module_cls(**kwargs)`` of a specialised class).
        **kwargs: constructor arguments of ``module_cls``.
    """

    module_cls: ClassVar[type[nn.Module] | None] = None
    _specialised: ClassVar[dict[type, type[ModuleEncoder]]] = {}

    def __init__(self, module: nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(act=None)
        if module is None:
            if type(self).module_cls is None:
                raise TypeError(
                    "ModuleEncoder needs a module: ModuleEncoder(module) or "
                    "ModuleEncoder.specialise(ModuleClass)(**kwargs)"
                )
            module = type(self).module_cls(**kwargs)
        elif kwargs:
            raise TypeError(f"constructor arguments {sorted(kwargs)} given with a module instance")
        self.layers = nn.ModuleList([module])

    @classmethod
    def specialise(cls, kind: type[nn.Module]) -> type[ModuleEncoder]:
        """The encoder class wrapping modules of class ``kind`` (cached)."""
        if kind not in cls._specialised:
            fwd = _params(kind.forward)
            edge_type = "edge_type" in fwd
            edge_attr = "edge_attr" in fwd and not edge_type
            if issubclass(kind, BasicGNN):  # takes edge_attr, but uses it only if its convs do
                edge_attr = edge_attr and bool(getattr(kind, "supports_edge_attr", True))
            flags = {
                "module_cls": kind,
                "supports_edge_type": edge_type,
                "supports_edge_attr": edge_attr,
                "__module__": __name__,
                "__doc__": f"{kind.__name__} wrapped as a GraphEncoder.",
            }
            cls._specialised[kind] = type(f"{kind.__name__}Encoder", (cls,), flags)
        return cls._specialised[kind]

    @classmethod
    def wrap(cls, module: nn.Module) -> ModuleEncoder:
        return cls.specialise(type(module))(module)

    @classmethod
    def keyword_arguments(cls) -> tuple[frozenset[str], bool]:
        """``(named constructor arguments of module_cls, whether it also takes **kwargs)``."""
        if cls.module_cls is None:
            return frozenset({"module"}), False
        return _keywords(cls.module_cls.__init__)

    def layer_forward(
        self,
        i: int,
        x: Tensor,
        edge_index: Tensor,
        edge_type: Tensor | None = None,
        edge_attr: Tensor | None = None,
        relation: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        x, relation = super().layer_forward(i, x, edge_index, edge_type, edge_attr, relation)
        if not isinstance(x, Tensor):  # e.g. a model returning (x, attention)
            raise TypeError(
                f"{type(self.layers[0]).__name__}.forward returned {type(x).__name__}; "
                "an encoder module must return a [num_nodes, channels] tensor"
            )
        return x, relation
