"""A batch of mentions to link: their (mention, context) token pairs, their padded candidates, and the
graphs of their documents."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from gnnlm.tasks.entity_linking.candidates import Candidate, feature_tensor
from gnnlm.tasks.entity_linking.doc_graph import DocumentGraph


@dataclass
class LinkingBatch:
    """``M`` mentions with at most ``K`` candidates each.

    Attributes:
        input_ids, attention_mask, token_type_ids: ``[M, seq]`` the (mention, context) pairs
            (``None`` when the mentions come encoded).
        mention_states: ``[M, hidden]`` the mentions' encodings by a frozen LM (``None``: the model
            encodes ``input_ids``).
        candidates: ``[M, K]`` entity ids (0 at padding).
        mask: ``[M, K]`` real candidates.
        features: ``[M, K, num_features]``.
        gold: ``[M]`` the gold candidate's column, ``-1`` when the gold entity is not a candidate (or
            unknown).
        graph: a PyG ``Batch`` of the mentions' document graphs (``None`` without graphs).
        candidate_node: ``[M, K]`` each candidate's node in ``graph``, ``-1`` at padding (``None``
            without graphs).
    """

    input_ids: Tensor | None
    attention_mask: Tensor | None
    token_type_ids: Tensor | None
    candidates: Tensor
    mask: Tensor
    features: Tensor
    gold: Tensor
    graph: object | None = None
    candidate_node: Tensor | None = None
    mention_states: Tensor | None = None

    def to(self, device: torch.device | str) -> LinkingBatch:
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v.to(device) if v is not None and hasattr(v, "to") else v
        return LinkingBatch(**values)


def context_window(text: str, start: int, end: int, chars: int) -> str:
    """Up to ``chars`` characters either side of ``text[start:end]``, the mention included, cut at word
    boundaries where possible."""
    left = text[max(0, start - chars) : start]
    right = text[end : end + chars]
    if start - chars > 0 and " " in left:
        left = left[left.index(" ") + 1 :]
    if end + chars < len(text) and " " in right:
        right = right[: right.rindex(" ")]
    return " ".join((left + text[start:end] + right).split())


def collate(
    tokenizer,
    items: list[tuple[str, str, list[Candidate], int | None, int]],
    graphs: list[DocumentGraph] | None,
    *,
    k: int,
    max_length: int,
    mention_states: Tensor | None = None,
) -> LinkingBatch:
    """The batch of ``items``: ``(mention text, context, candidates, gold entity or None, graph
    index)`` per mention, ``graphs`` the distinct document graphs they index (``None``: no graph);
    with ``mention_states: [M, hidden]`` (a frozen LM's encodings) nothing is tokenized."""
    enc: dict = {}
    if mention_states is None:
        enc = tokenizer(
            [m for m, *_ in items], [c for _, c, *_ in items], padding=True,
            truncation="only_second", max_length=max_length, return_tensors="pt",
        )  # fmt: skip
    cands = [c for _, _, c, _, _ in items]
    entities, mask, features = feature_tensor(cands, k)
    gold = torch.full((len(items),), -1, dtype=torch.long)
    for i, (_, _, c, g, _) in enumerate(items):
        ids = [x.entity for x in c[:k]]
        if g is not None and g in ids:
            gold[i] = ids.index(g)
    graph = candidate_node = None
    if graphs is not None:
        from torch_geometric.data import Batch, Data

        graph = Batch.from_data_list([
            Data(n_id=g.n_id, edge_index=g.edge_index, edge_type=g.edge_type, role=g.role,
                 features=g.features, num_nodes=g.num_nodes)
            for g in graphs
        ])  # fmt: skip
        candidate_node = torch.full((len(items), k), -1, dtype=torch.long)
        for i, (_, _, c, _, gi) in enumerate(items):
            position = {int(e): j for j, e in enumerate(graphs[gi].n_id.tolist())}
            offset = int(graph.ptr[gi])
            for j, x in enumerate(c[:k]):
                candidate_node[i, j] = offset + position[x.entity]
    return LinkingBatch(
        enc.get("input_ids"), enc.get("attention_mask"), enc.get("token_type_ids"), entities, mask,
        features, gold, graph, candidate_node, mention_states,
    )  # fmt: skip


def frozen_text(mention: str, context: str) -> str:
    """The single text a frozen LM encodes for a mention (the pair, joined by the separator)."""
    return f"{mention} [SEP] {context}"


__all__ = ["LinkingBatch", "collate", "context_window", "frozen_text"]
