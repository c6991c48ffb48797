"""Entity markers: the R-BERT / matching-the-blanks input, the two nominals wrapped in marker strings.

``"the <e1>child</e1> was bound into the <e2>cradle</e2>"`` becomes, with the default markers
``["$", "$", "#", "#"]`` (R-BERT's, Wu & He 2019, https://arxiv.org/abs/1905.08284)::

    "the $ child $ was bound into the # cradle #"

Punctuation markers are one token of every BERT word-piece vocabulary (MiniLM's and the tiny test models'
included), so no embedding is added and the pretrained LM reads them from the first step (Zhou & Chen's
"typed entity marker (punct)", https://arxiv.org/abs/2102.01373, found them as good as new tokens).
Bracketed markers such as ``[E1]`` work too: the tokenizer splits them, and the head reads the marker's
first token. The head reads the state of each start marker (matching the blanks' ``ENTITY START``, Baldini
Soares et al. 2019, https://arxiv.org/abs/1906.03158).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: R-BERT's markers: e1 start, e1 end, e2 start, e2 end
DEFAULT_MARKERS: tuple[str, str, str, str] = ("$", "$", "#", "#")


@dataclass(frozen=True)
class MarkedText:
    """A sentence with its nominals wrapped in markers.

    Attributes:
        text: the marked sentence.
        starts: character position of the e1 and of the e2 start marker in ``text``.
        nominals: ``((start, end), (start, end))``: each nominal's characters in ``text``.
        spans: ``((start, end), (start, end))``: each nominal with its two markers (start marker to
            end marker), the span whose tokens entity injection reaches.
    """

    text: str
    starts: tuple[int, int]
    nominals: tuple[tuple[int, int], tuple[int, int]]
    spans: tuple[tuple[int, int], tuple[int, int]]


def insert_markers(
    sentence: str,
    e1: tuple[int, int],
    e2: tuple[int, int],
    markers: Sequence[str] = DEFAULT_MARKERS,
) -> MarkedText:
    """Wrap ``sentence[e1[0]:e1[1]]`` and ``sentence[e2[0]:e2[1]]`` in ``markers`` (e1 start, e1 end,
    e2 start, e2 end), each marker separated from the nominal by a space and from its neighbours by one
    when they are not spaces already.

    Raises:
        ValueError: four markers not given, a span outside the sentence, empty or overlapping spans.
    """
    if len(markers) != 4 or not all(isinstance(m, str) and m.strip() for m in markers):
        raise ValueError(
            f"need 4 non-empty markers (e1 start, e1 end, e2 start, e2 end), got {markers!r}"
        )
    for name, (start, end) in (("e1", e1), ("e2", e2)):
        if not 0 <= start < end <= len(sentence):
            raise ValueError(
                f"{name} span {(start, end)} outside the {len(sentence)}-character sentence"
            )
    if e1[0] < e2[1] and e2[0] < e1[1]:
        raise ValueError(f"e1 {e1} and e2 {e2} overlap in {sentence!r}")
    order = sorted(((e1, 0), (e2, 1)))  # left to right
    text, position = "", 0
    starts, nominals, spans = [0, 0], [(0, 0), (0, 0)], [(0, 0), (0, 0)]
    for (start, end), which in order:
        before = sentence[position:start]
        text += before
        if text and not text[-1].isspace():
            text += " "
        starts[which] = len(text)
        text += markers[2 * which] + " "
        nominals[which] = (len(text), len(text) + end - start)
        text += sentence[start:end] + " " + markers[2 * which + 1]
        spans[which] = (starts[which], len(text))
        position = end
        if position < len(sentence) and not sentence[position].isspace():
            text += " "
    text += sentence[position:]
    return MarkedText(text, tuple(starts), tuple(nominals), tuple(spans))  # type: ignore[arg-type]
