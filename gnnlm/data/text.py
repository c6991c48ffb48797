"""Readers for entity and relation text files (``entity2text.txt``, ``entity2wikidata.json``, ...)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gnnlm.data.errors import DataFormatError
from gnnlm.data.io import describe_missing, read_rows, read_text
from gnnlm.data.vocab import Vocabulary


def read_id_text(
    path: str | os.PathLike, vocab: Vocabulary, *, encoding: str = "utf-8"
) -> tuple[list[str | None], int]:
    """Read ``identifier<TAB>text`` lines into a list aligned with ``vocab``.

    Lines for identifiers outside the vocabulary are allowed (KG-BERT's FB15k-237 file covers
    14,951 entities, the splits 14,541) and counted.

    Returns:
        ``(texts, num_outside)``: ``texts[i]`` is the text of entity ``i`` (``None`` when the file
        has none) and ``num_outside`` the number of lines naming identifiers outside ``vocab``.

    Raises:
        DataFormatError: a malformed line, or an identifier given twice.
    """
    texts: list[str | None] = [None] * len(vocab)
    first_line: dict[str, int] = {}
    outside = 0
    for number, (key, text) in read_rows(path, 2, encoding=encoding):
        if key in first_line:
            raise DataFormatError(
                path, number, f"identifier given twice (first at line {first_line[key]})", key
            )
        first_line[key] = number
        if key in vocab:
            texts[vocab.id(key)] = text.strip()
        else:
            outside += 1
    return texts, outside


def split_name_gloss(texts: list[str | None]) -> tuple[list[str | None], list[str | None]]:
    """Split KG-BERT's WN18RR ``"name, gloss"`` texts at the first ``", "``."""
    names: list[str | None] = []
    glosses: list[str | None] = []
    for text in texts:
        if text is None:
            names.append(None)
            glosses.append(None)
            continue
        name, _, gloss = text.partition(", ")
        names.append(name)
        glosses.append(gloss or None)
    return names, glosses


def read_wikidata_json(path: str | os.PathLike, vocab: Vocabulary) -> dict[str, list]:
    """Read ``entity2wikidata.json`` (``{freebase_id: {label, description, alternatives,
    wikidata_id, ...}}``) into lists aligned with ``vocab``.

    Returns:
        ``{"label": [...], "description": [...], "alternatives": [[...]], "wikidata_id": [...],
        "outside": int}``.

    Raises:
        DataFormatError: invalid JSON (with its line) or an entry of the wrong shape.
    """
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(
            path, err.lineno, f"invalid JSON ({err.msg})", text[err.pos : err.pos + 40]
        ) from None
    if not isinstance(data, dict):
        raise DataFormatError(
            path, 1, "expected a JSON object keyed by entity id", type(data).__name__
        )
    n = len(vocab)
    out: dict[str, list] = {
        "label": [None] * n,
        "description": [None] * n,
        "alternatives": [[] for _ in range(n)],
        "wikidata_id": [None] * n,
    }
    outside = 0
    for key, entry in data.items():
        if key not in vocab:
            outside += 1
            continue
        if not isinstance(entry, dict):
            raise DataFormatError(path, _line_of(text, key), "entry is not a JSON object", key)
        i = vocab.id(key)
        out["label"][i] = entry.get("label") or None
        out["description"][i] = entry.get("description") or None
        aliases = entry.get("alternatives") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise DataFormatError(
                path, _line_of(text, key), "alternatives is not a list of strings", key
            )
        out["alternatives"][i] = aliases
        out["wikidata_id"][i] = entry.get("wikidata_id") or None
    out["outside"] = outside  # type: ignore[assignment]
    return out


def _line_of(text: str, key: str) -> int | None:
    pos = text.find(json.dumps(key))
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def fill(primary: list[str | None], fallback: list[str | None]) -> list[str | None]:
    """``primary`` with its gaps filled from ``fallback``."""
    return [p if p else f for p, f in zip(primary, fallback)]


def optional_file(folder: Path, name: str) -> Path | None:
    """``folder / name`` when it is a file, ``None`` when absent.

    Raises:
        FileNotFoundError: the name exists but is no readable file (a broken symbolic link, a loop,
            a folder), which is never taken for "no such file".
    """
    path = folder / name
    if path.is_file():
        return path
    if os.path.lexists(path):
        raise FileNotFoundError(describe_missing(path))
    return None
