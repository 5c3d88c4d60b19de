"""The verifier's pure text work: find the final answer, clean it, wrap it for math-verify.

Everything here is a pure function over bounded strings, linear in the input, and testable
without worker processes. Model text is never ``eval``-ed or ``sympify``-ed.
"""

from __future__ import annotations

import re

from seele_env.latex import last_boxed

__all__ = ["FORMATTED_METHODS", "clean_answer", "extract_answer", "gold_latex", "to_latex"]

# ---------------------------------------------------------------------------------------------
# Answer extraction (pure, bounded time)
# ---------------------------------------------------------------------------------------------

# Only plain literals or fixed-width classes inside these patterns: no nested quantifiers,
# so matching is linear in the input.
_THE_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+)?answer\s+is\b:?", re.IGNORECASE)
FORMATTED_METHODS = frozenset({"boxed", "answer_tag"})


def _last_answer_tag(text: str) -> str | None:
    lower = text.lower()
    end = lower.rfind("</answer>")
    if end < 0:
        return None
    start = lower.rfind("<answer>", 0, end)
    if start < 0:
        return None
    content = text[start + len("<answer>") : end].strip()
    return content or None


def _rest_of_sentence(text: str) -> str | None:
    """The text up to the end of the line, cut at a sentence end (". " but not "3.5")."""
    line = text.split("\n", 1)[0]
    cut = re.search(r"\.\s", line)
    if cut:
        line = line[: cut.start()]
    line = line.strip().rstrip(".").strip()
    return line or None


def _last_the_answer_is(text: str) -> str | None:
    last = None
    for last in _THE_ANSWER_IS_RE.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last is None:
        return None
    return _rest_of_sentence(text[last.end() :])


def _last_hashes(text: str) -> str | None:
    pos = text.rfind("####")
    if pos < 0:
        return None
    return _rest_of_sentence(text[pos + 4 :])


_EXTRACTORS = (
    ("boxed", last_boxed),
    ("answer_tag", _last_answer_tag),
    ("the_answer_is", _last_the_answer_is),
    ("hashes", _last_hashes),
)


def extract_answer(completion: str) -> tuple[str | None, str | None]:
    """Find the final answer in a model completion.

    Tried in order, the first method that finds something wins: the last complete ``\\boxed{}``
    (or ``\\fbox{}``, or ``\\boxed 5`` without braces); else the last ``<answer>...</answer>``;
    else the text after the last "the answer is" (up to the end of its sentence); else the text
    after the last ``####``. Pure and linear-time: braces are matched by one scan, and no regex
    can backtrack catastrophically.

    Args:
        completion: The model's text.

    Returns:
        ``(answer, method)`` with ``method`` in ``{"boxed", "answer_tag", "the_answer_is",
        "hashes"}``, or ``(None, None)`` if nothing was found.

    Example:
        >>> extract_answer(r"First \\boxed{1}, then \\boxed{\\frac{1}{2}}")
        ('\\\\frac{1}{2}', 'boxed')
        >>> extract_answer("The answer is 18. Done.")
        ('18', 'the_answer_is')
    """
    if not isinstance(completion, str):
        return None, None
    for method, extractor in _EXTRACTORS:
        answer = extractor(completion)
        if answer is not None:
            return answer, method
    return None, None


# ---------------------------------------------------------------------------------------------
# Cleanup and wrapping (pure)
# ---------------------------------------------------------------------------------------------

_PLAIN_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_TEXT_NUMBER_RE = re.compile(
    r"\\(?:text|textbf|mathrm|mathbf)\{\s*(" + _PLAIN_NUMBER + r")\s*\}", re.ASCII
)
# `1,000` and `12,345.5`: math-verify reads a bare `1,2` as the set {1, 2}, so digit groups of
# exactly three are taken as thousands separators and removed; anything else is left alone.
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?", re.ASCII)
_DOLLARS_RE = re.compile(r"\s*(?:dollars?|USD)$", re.IGNORECASE)
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def clean_answer(answer: str) -> str:
    """Light cleanup of an answer string before math-verify sees it.

    Removes what math-verify misreads (measured with 0.9.0): markdown bold (``**73**`` parses as
    a string), a trailing period (``18.`` fails), math delimiters around the whole answer, a
    dollar sign or "dollars" (``18 dollars`` parses as a product of symbols), ``\\text{}`` around a
    plain number, and thousands separators.
    """
    text = answer.strip()
    for _ in range(4):  # a few passes: "**$18$.**" needs several layers removed
        before = text
        text = text.replace("**", "").strip()
        text = text.rstrip(".").strip()
        for left, right in _DELIMITERS:
            if (
                len(text) > len(left) + len(right)
                and text.startswith(left)
                and text.endswith(right)
            ):
                text = text[len(left) : -len(right)].strip()
        text = text.replace("\\$", "")
        if text.startswith("$") and text.count("$") == 1:  # "$18": a currency sign, not math
            text = text[1:]
        text = _DOLLARS_RE.sub("", text).strip()
        if text == before:
            break
    text = _TEXT_NUMBER_RE.sub(r"\1", text)
    if _THOUSANDS_RE.fullmatch(text):
        text = text.replace("{,}", "").replace(",", "")
    return text


def to_latex(answer: str) -> str:
    """Wrap an answer for math-verify: bare answers such as ``(1,2]``, ``\\{1,2\\}``, ``x=5`` or
    ``\\text{13}`` parse to nothing or to the wrong thing without a LaTeX anchor around them."""
    return "\\boxed{" + answer + "}"


def gold_latex(gold: str) -> str:
    """The gold answer as math-verify input (a gold given as ``\\boxed{...}`` is unwrapped)."""
    boxed = last_boxed(gold)
    return to_latex(clean_answer(boxed if boxed is not None else gold))
