"""Strict YAML for configs, and the error every config problem raises.

Kept free of torch (and of :mod:`gnnlm.train`) so that any command can read a config cheaply.
:class:`ConfigError` is re-exported by :mod:`gnnlm.train` and :mod:`gnnlm.train.config`.
"""

from __future__ import annotations

from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key or value that does not fit the schema (message names where it came from)."""


class ConfigWarning(UserWarning):
    """A config value that was adjusted, e.g. encoder arguments left out when ``--set`` swaps encoders."""


def quote(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters (a bad line in a message stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def did_you_mean(given: Any, valid: list[str], prefix: str = "") -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``given``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(given), valid, n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def load_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Parse a YAML config strictly and record the 1-based line of every key path (``training.lr`` -> 12).

    Refused, as a :class:`ConfigError` of one line naming ``source``, line and column (from 1): invalid
    YAML, any tag (``!!python/object:...``, ``!!binary``, ``!custom``; a config holds mappings, lists,
    strings, numbers, booleans and null) and a key repeated within a mapping (YAML would keep the last).
    """
    lines: dict[str, int] = {}

    def fail(mark: yaml.Mark | None, problem: str) -> ConfigError:
        if mark is None:
            return ConfigError(f"{source}: {problem}")
        line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        shown = f": {quote(line.strip())}" if line.strip() else ""
        return ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: {problem}{shown}")

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in n.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise fail(
                        key_node.start_mark, "a key must be a plain name, not a list or mapping"
                    )
                if key_node.value in seen:
                    raise fail(
                        key_node.start_mark,
                        f"key '{prefix}{key_node.value}' is repeated (YAML would keep only the last)",
                    )
                seen.add(key_node.value)
                key = f"{prefix}{key_node.value}"
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, f"{key}.")
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item, prefix)

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            tag = getattr(event, "tag", None)  # None unless written explicitly
            if tag is not None:
                tag = tag.replace("tag:yaml.org,2002:", "!!", 1)
                raise fail(
                    event.start_mark, f"YAML tag {tag!r} is not allowed; write the plain value"
                )
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            walk(node, "")
        return yaml.safe_load(text), lines
    except yaml.MarkedYAMLError as err:
        problem = err.problem or "cannot parse"
        context = f" ({err.context})" if err.context else ""
        raise fail(err.problem_mark, f"invalid YAML: {problem}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(err).split())}") from None
