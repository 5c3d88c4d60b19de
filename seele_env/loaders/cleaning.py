"""Pure text-cleaning helpers used by the row parsers: boxed answers, GSM8K notes, AoPS signatures.

Each helper is conservative: when a pattern is not clearly present the text is left as it is,
because a wrong "cleaning" silently changes the gold answer or the hints.
"""

from __future__ import annotations

import re

from seele_env.latex import last_boxed

__all__ = [
    "after_think",
    "clean_gsm8k",
    "format_number",
    "join_steps",
    "last_boxed",
    "looks_like_worked_solution",
    "split_signed_solutions",
    "strip_math_delimiters",
]

_CALCULATOR_NOTE = re.compile(r"<<[^\n]*?>>")
_FINAL_LINE = re.compile(r"^####[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def clean_gsm8k(worked: str) -> tuple[str, str | None]:
    """Split a GSM8K ``answer`` field into ``(solution, final answer)``.

    The solution is the text before the ``####`` line with every ``<<expr=value>>`` calculator
    note removed (the text around each note stays); the final answer is what follows ``####``
    with thousands separators removed. The answer is ``None`` when there is no ``####`` line.

    Example:
        >>> clean_gsm8k("She pays 2*500 = $<<2*500=1000>>1,000.\\n#### 1,000")
        ('She pays 2*500 = $1,000.', '1000')
    """
    finals = list(_FINAL_LINE.finditer(worked))
    if not finals:
        return _CALCULATOR_NOTE.sub("", worked).strip(), None
    last = finals[-1]
    answer = last.group(1).strip()
    # Only "1,000"-shaped numbers lose their commas; "1,3" (a list) is left alone.
    if _THOUSANDS.fullmatch(answer):
        answer = answer.replace(",", "")
    solution = _CALCULATOR_NOTE.sub("", worked[: last.start()]).strip()
    return solution, answer or None


def format_number(value: object) -> str:
    """A numeric answer as text: integral floats lose their ``.0`` (``27.0`` -> ``"27"``).

    Example:
        >>> format_number(27.0), format_number(0.5), format_number(-3), format_number("27.0")
        ('27', '0.5', '-3', '27')
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+\.0+", text):
        return text.split(".")[0]
    return text


_DOLLAR_GROUP = re.compile(r"\$([^$]*)\$")


def strip_math_delimiters(answer: str) -> str:
    """Remove the ``$...$`` around an answer, also for ``"$69$,$84$"``-style lists.

    Example:
        >>> strip_math_delimiters("$2^{1009}$"), strip_math_delimiters("$69$,$84$")
        ('2^{1009}', '69, 84')
        >>> strip_math_delimiters("1,3,5")
        '1,3,5'
    """
    text = answer.strip()
    groups = _DOLLAR_GROUP.findall(text)
    if groups and re.fullmatch(r"\$[^$]*\$(?:\s*,\s*\$[^$]*\$)*", text):
        return ", ".join(g.strip() for g in groups)
    return text


def after_think(text: str) -> str:
    """The text after the last ``</think>`` (R1-style traces), or the whole text if none.

    Example:
        >>> after_think("<think>\\nlong musing\\n</think>\\nSo $x=2$.")
        'So $x=2$.'
    """
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


# AoPS-wiki signatures, as found in AIME 2024 solutions (see docs/datasets.md for the list).
# A whole line that is only a signature ends one solution:
#   "~angie.", "~Steven Chen (Professor Chen Education Palace, www...)", "~[luckuso](url)",
#   "-Failure.net", "-Benedict T (countmath1)", "- [spectraldragon8](url)", "Solution by X".
# Lines with "$" or "\" are never signatures: they are maths ("- 10^4 \left(...").
_SIGNATURE_LINE = re.compile(
    r"""^[ \t]*(?:
        ~[^$\\\n]*                                       # ~name, ~ name (affiliation), ~[name](url)
      | -[ ]?\[[^\]\n]+\]\([^)\n]*\)                     # - [name](url)
      | -[ ]?[A-Za-z][\w.]{2,}(?:[ ][A-Z][\w.]*)?(?:[ ]\([^)$\\\n]*\))?   # -Name, -Benedict T (x)
      | Solution[ ]by[ ][^$\\\n]+                        # Solution by Quantum-Phantom
    )[ \t]*$""",
    re.VERBOSE,
)
# "By Furaken" opening a solution: only trusted as the first line, since "By AM-GM" is maths.
_BYLINE_FIRST = re.compile(r"^[ \t]*By [A-Z][\w-]*[ \t]*$")
# A signature at the end of a line of text, after a full stop or closing math:
#   "... $\boxed{236}$. ~akliu", "... = 204$. -sepehr2010", "... $x=\boxed{080}$. - lackolith".
_SIGNATURE_TAIL = re.compile(r"(?<=[.$])[ \t]+(?:~[ ]?[A-Za-z][\w.]*|-[ ]?[A-Za-z][\w]{2,})[ \t]*$")


def split_signed_solutions(text: str) -> list[str]:
    """Split an AoPS-wiki solution text at its author signatures, dropping the signatures.

    AIME solution fields concatenate several community solutions, each ending with a signature
    line (``~name``, ``-name``, ``Solution by name``) or a signature after its last sentence.
    The pieces come back in order, stripped, without the signatures; text with no signature is
    one piece.

    Example:
        >>> split_signed_solutions("First, $x=1$.\\n~alice\\nAlso $x=1$. -bob\\nThird.")
        ['First, $x=1$.', 'Also $x=1$.', 'Third.']
    """
    pieces: list[str] = []
    current: list[str] = []

    def flush() -> None:
        piece = "\n".join(current).strip()
        if piece:
            pieces.append(piece)
        current.clear()

    for i, line in enumerate(text.split("\n")):
        if _SIGNATURE_LINE.match(line) or (i == 0 and _BYLINE_FIRST.match(line)):
            flush()
            continue
        tail = _SIGNATURE_TAIL.search(line)
        if tail:
            current.append(line[: tail.start()])
            flush()
            continue
        current.append(line)
    flush()
    return pieces


_STEP_PREFIX = re.compile(r"^[ \t]*(?:\*\*)?[Ss]tep[ \t]*(\d+)")


def join_steps(steps: list[object] | tuple[object, ...]) -> str | None:
    """A solution given as a list of step strings, as one text that splits back into them.

    Step-annotated datasets store a solution as a JSON array of steps. Each step goes on its own
    line behind a ``Step k:`` marker, which ``seele_env.hints.split_steps`` reads as numbered
    steps, so ``hint_unit="steps"`` gives exactly these steps back (steps already numbered
    ``Step 1``, ``Step 2``, ... keep their own markers). Blank steps are dropped; ``None`` if
    none is left.

    Example:
        >>> join_steps(["Add: 2 + 3 = 5.", "", "So the answer is 5."])
        'Step 1: Add: 2 + 3 = 5.\\nStep 2: So the answer is 5.'
    """
    texts = [
        (s if isinstance(s, str) else format_number(s)).strip() for s in steps if s is not None
    ]
    texts = [text for text in texts if text]
    if not texts:
        return None
    numbered = [_STEP_PREFIX.match(text) for text in texts]
    if all(m is not None and int(m.group(1)) == k for k, m in enumerate(numbered, 1)):
        return "\n".join(texts)
    return "\n".join(f"Step {k}: {text}" for k, text in enumerate(texts, 1))


_SENTENCE_BREAK = re.compile(r"[\w)$][.!?]\s+[A-Z]")


def looks_like_worked_solution(answer: str) -> bool:
    """Whether a "final answer" is really a worked solution: a GSM8K ``#### n`` trailer, or a
    long text of several sentences (a final answer is a number or a short expression)."""
    if "####" in answer:
        return True
    return len(answer) > 80 and len(_SENTENCE_BREAK.findall(answer)) >= 2
