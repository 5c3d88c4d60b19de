"""The verifier's pure text work: find the final answer, clean it, wrap it for math-verify.

Everything here is a pure function over bounded strings, linear in the input, and testable
without worker processes. Model text is never ``eval``-ed or ``sympify``-ed.
"""

from __future__ import annotations

import re

from seele_env.latex import last_boxed, last_boxed_span

__all__ = [
    "FORMATTED_METHODS",
    "answer_in_statement",
    "clean_answer",
    "extract_answer",
    "gold_latex",
    "to_latex",
]

# ---------------------------------------------------------------------------------------------
# Answer extraction (pure, bounded time)
# ---------------------------------------------------------------------------------------------

# Only plain literals or fixed-width classes inside these patterns: no nested quantifiers,
# so matching is linear in the input.
_THE_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+)?answer\s+is\b:?", re.IGNORECASE)
FORMATTED_METHODS = frozenset({"boxed", "answer_tag"})

# Where a stated answer ends and the prose after it begins: ", since", "; ", " (eighteen)",
# " and not 19", "!" (a sentence end, not a factorial: plain math-verify reads it so too).
_CLAUSE_END_RE = re.compile(
    r",\s+(?=[A-Za-z])|;|\s\(|\s(?:and|because|since|which|as|so|but|where|when|for|if)\b"
    r"|[!?]+(?=\s|$)",
    re.IGNORECASE,
)
# A number followed by words: "18 eggs", "3/4 of the cake", "12,345 people" (units or prose).
_NUMBER_THEN_WORDS_RE = re.compile(
    r"(\\?\$?[-+]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?(?:\\?%)?)\s+([A-Za-z]{2,})", re.ASCII
)
# Words that continue a mathematical answer rather than end it ("2 pi", "3 times 4").
_MATH_WORDS = frozenset(
    {"pi", "sqrt", "times", "cdot", "over", "divided", "plus", "minus", "squared", "cubed",
     "to", "mod", "log", "ln", "sin", "cos", "tan", "root", "choose"}
)  # fmt: skip
_CHOICE_RE = re.compile(r"\(?[A-Za-z]\)?")


def _last_answer_tag(text: str) -> tuple[str, int] | None:
    lower = text.lower()
    end = lower.rfind("</answer>")
    if end < 0:
        return None
    start = lower.rfind("<answer>", 0, end)
    if start < 0:
        return None
    content = text[start + len("<answer>") : end].strip()
    return (content, start) if content else None


def _rest_of_sentence(text: str) -> str | None:
    """The text up to the end of the line, cut at a sentence end (". " but not "3.5")."""
    line = text.split("\n", 1)[0]
    cut = re.search(r"\.\s", line)
    if cut:
        line = line[: cut.start()]
    line = line.strip().rstrip(".").strip()
    return line or None


def _leading_math(text: str) -> str | None:
    """``$...$``, ``$$...$$`` or ``\\(...\\)`` at the start of ``text`` (delimiters kept)."""
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)")):
        if text.startswith(left):
            end = text.find(right, len(left))
            if end > len(left):
                return text[: end + len(right)]
            return None
    return None


def _clause_end(text: str) -> int:
    """Where the first clause boundary outside brackets is, else ``len(text)``."""
    depth, pos = [0] * (len(text) + 1), 0
    for i, ch in enumerate(text):  # bracket depth before each position, one scan
        if ch in "([{":
            pos += 1
        elif ch in ")]}" and pos > 0:
            pos -= 1
        depth[i + 1] = pos
    for m in _CLAUSE_END_RE.finditer(text):
        # " (" opens a bracket at depth 0: an aside; "(a, b)" keeps its comma.
        if depth[m.start()] == 0 and m.start() > 0:
            return m.start()
    return len(text)


def answer_in_statement(statement: str) -> str | None:
    """The answer at the start of a stated-answer sentence, without the prose after it.

    Example:
        >>> [answer_in_statement(s) for s in ("18 eggs", "$18$, which matches", "18 (eighteen)")]
        ['18', '$18$', '18']
    """
    text = statement.strip()
    math = _leading_math(text.lstrip("*"))
    if math is not None:
        return math
    if text.startswith("$") and not text.startswith("$$"):  # "$18": an unpaired currency sign
        text = text[1:]
    text = text[: _clause_end(text)].strip()
    number = _NUMBER_THEN_WORDS_RE.match(text)
    if number and number.group(2).lower() not in _MATH_WORDS:
        return number.group(1)
    return text or None


def _looks_like_an_answer(text: str) -> bool:
    """Digits, LaTeX, or a one-letter choice: not prose such as "as above" or "correct"."""
    return any(c.isdigit() or c in "\\$" for c in text) or bool(_CHOICE_RE.fullmatch(text))


def _last_the_answer_is(text: str) -> tuple[str, int] | None:
    last = None
    for last in _THE_ANSWER_IS_RE.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last is None:
        return None
    sentence = _rest_of_sentence(text[last.end() :])
    answer = answer_in_statement(sentence) if sentence is not None else None
    return (answer, last.start()) if answer else None


def _last_hashes(text: str) -> tuple[str, int] | None:
    pos = text.rfind("####")
    if pos < 0:
        return None
    answer = _rest_of_sentence(text[pos + 4 :])
    return (answer, pos) if answer else None


def extract_answer(completion: str) -> tuple[str | None, str | None]:
    """Find the final answer in a model completion.

    The last complete ``\\boxed{}`` (or ``\\fbox{}``, or ``\\boxed 5`` without braces); else the
    last ``<answer>...</answer>``; else the answer stated after the last "the answer is" (up to
    the end of its sentence, without trailing prose: "18 eggs" gives ``18``); else the text after
    the last ``####``. One exception: a "the answer is ..." statement that comes *after* the box
    or tag, and states something answer-like (digits, LaTeX, a choice letter), wins: the final
    explicit statement is the answer, a boxed intermediate result is not. Pure and linear-time:
    braces are matched by one scan, and no regex can backtrack catastrophically.

    Args:
        completion: The model's text.

    Returns:
        ``(answer, method)`` with ``method`` in ``{"boxed", "answer_tag", "the_answer_is",
        "hashes"}``, or ``(None, None)`` if nothing was found.

    Example:
        >>> extract_answer(r"First \\boxed{1}, then \\boxed{\\frac{1}{2}}")
        ('\\\\frac{1}{2}', 'boxed')
        >>> extract_answer("The answer is 18 eggs. Done.")
        ('18', 'the_answer_is')
        >>> extract_answer(r"Half is \\boxed{9}, so the final answer is 18.")
        ('18', 'the_answer_is')
    """
    if not isinstance(completion, str):
        return None, None
    stated = _last_the_answer_is(completion)
    for method, found in (
        ("boxed", last_boxed_span(completion)),
        ("answer_tag", _last_answer_tag(completion)),
    ):
        if found is not None:
            if stated is not None and stated[1] > found[1] and _looks_like_an_answer(stated[0]):
                return stated[0], "the_answer_is"
            return found[0], method
    if stated is not None:
        return stated[0], "the_answer_is"
    hashes = _last_hashes(completion)
    return (hashes[0], "hashes") if hashes is not None else (None, None)


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
