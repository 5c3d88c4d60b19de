"""Small LaTeX helpers shared by the loaders and the verifier: brace matching, last ``\\boxed{}``.

Both run in one linear scan, so they are safe on untrusted model output of any length.
"""

from __future__ import annotations

import re

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def match_braces(text: str) -> dict[int, int]:
    """Map each ``{`` position to its matching ``}`` position, in one linear scan.

    Escaped braces (``\\{``, ``\\}``) are LaTeX set delimiters, not groups, so they are skipped.
    Unclosed ``{`` are absent from the map.
    """
    stack: list[int] = []
    match: dict[int, int] = {}
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2  # skip the escaped character, whatever it is
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            match[stack.pop()] = i
        i += 1
    return match


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``/``\\fbox{...}`` (or ``\\boxed 5``), stripped.

    Braces are matched, so nested groups come back whole; an unclosed box (a completion cut off
    mid-answer) is passed over for the previous complete one. ``None`` if there is none.

    Example:
        >>> last_boxed(r"so $x=\\boxed{\\frac{1}{2}}$ and not \\boxed{3")
        '\\\\frac{1}{2}'
    """
    found = last_boxed_span(text)
    return None if found is None else found[0]


def last_boxed_span(text: str) -> tuple[str, int] | None:
    """Like :func:`last_boxed`, with the position where that box's command starts."""
    starts = [(m.start(), m.end()) for m in _BOXED_RE.finditer(text)]
    if not starts:
        return None
    match = match_braces(text)
    for command, start in reversed(starts):
        j = start
        while j < len(text) and text[j] in " \t":
            j += 1
        if j < len(text) and text[j] == "{":
            end = match.get(j)
            if end is None:  # unclosed, e.g. a completion truncated mid-answer
                continue
            content = text[j + 1 : end].strip()
        elif j > start:  # `\boxed 5`: the argument is the next token
            k = j
            while k < len(text) and not text[k].isspace() and text[k] not in "$}":
                k += 1
            content = text[j:k]
        else:
            continue
        if content:
            return content, command
    return None
