"""Row parsers: one small pure function per dataset, ``(row, index, ctx) -> Problem``.

A parser raises :class:`SkipRow` with a short reason when a row cannot become a problem; the
loader counts the reason in the :class:`~seele_env.loaders.LoadReport`. Parsers accept the field
names of both the local files and the default hub copies (``problem`` or ``question``, ...), so
one parser serves both routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from seele_env.loaders.cleaning import (
    after_think,
    clean_gsm8k,
    format_number,
    join_steps,
    last_boxed,
    split_signed_solutions,
    strip_math_delimiters,
)
from seele_env.problems import Problem

__all__ = ["GENERIC_FIELDS", "PARSERS", "RowContext", "SkipRow"]


class SkipRow(Exception):
    """Raised by a parser for a row that cannot become a problem.

    Args:
        reason: Short category counted in the report (``"missing question"``).
        detail: Longer text for the report's examples; defaults to ``reason``.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass(frozen=True)
class RowContext:
    """What a parser needs besides the row.

    Attributes:
        dataset: Name used as id prefix and ``Problem.source`` (``"gsm8k"``, a file stem, a hub id).
        split: The split name, used in ids of rows without their own id.
        options: Parser options such as ``solution_index`` (DeepMath).
        fields: For the generic parser: our field name -> the row keys to try, in order.
    """

    dataset: str
    split: str
    options: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


RowParser = Callable[[Mapping[str, Any], int, RowContext], Problem]


def _value(row: Mapping[str, Any], *keys: str) -> Any:
    """The first of ``keys`` whose value is present and not blank, else ``None``."""
    for key in keys:
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        return value
    return None


def _text(row: Mapping[str, Any], *keys: str) -> str | None:
    """Like :func:`_value` but as stripped text (numbers formatted with :func:`format_number`)."""
    value = _value(row, *keys)
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else format_number(value)


def _question(row: Mapping[str, Any], *keys: str) -> str:
    question = _text(row, *keys)
    if question is None:
        raise SkipRow("missing question", f"missing question (looked for {', '.join(keys)})")
    return question


def _problem_id(ctx: RowContext, own: Any, index: int) -> str:
    """``{dataset}/{own id}`` when the row has an id, else ``{dataset}/{split}/{row index}``."""
    if own is not None and str(own).strip():
        return f"{ctx.dataset}/{format_number(own)}"
    return f"{ctx.dataset}/{ctx.split}/{index}"


def _metadata(row: Mapping[str, Any], index: int, *keys: str) -> dict[str, Any]:
    meta: dict[str, Any] = {key: row[key] for key in keys if row.get(key) is not None}
    meta["row_index"] = index
    return meta


def parse_gsm8k(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """GSM8K: ``question``; ``answer`` holds the worked solution ending in ``#### <number>``."""
    question = _question(row, "question")
    worked = _text(row, "answer")
    if worked is None:
        raise SkipRow("no final answer", "empty 'answer' field")
    solution, answer = clean_gsm8k(worked)
    if answer is None:
        raise SkipRow("no final answer", "no '####' line in 'answer'")
    return Problem(
        id=_problem_id(ctx, row.get("id"), index),
        question=question,
        answer=answer,
        solution=solution or None,
        source=ctx.dataset,
        metadata=_metadata(row, index),
    )


def parse_math(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """MATH, MATH-500, PRM800K and Minerva: ``answer`` field, else the solution's last box."""
    question = _question(row, "problem", "question")
    solution = _text(row, "solution")
    answer = _text(row, "answer") or (last_boxed(solution) if solution else None)
    if answer is None:
        raise SkipRow(
            "no final answer", "answer empty or absent, and no non-empty \\boxed{} in 'solution'"
        )
    return Problem(
        id=_problem_id(ctx, _value(row, "unique_id", "id", "idx"), index),
        question=question,
        answer=answer,
        solution=solution,
        source=ctx.dataset,
        metadata=_metadata(row, index, "level", "type", "subject", "unique_id", "idx"),
    )


def parse_aime24(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """AIME 2024 with AoPS-wiki solutions: signatures removed, first solution kept as ``solution``.

    The other community solutions of the same problem go to ``metadata["other_solutions"]``.
    """
    question = _question(row, "problem", "question")
    answer = _text(row, "answer")
    if answer is None:
        raise SkipRow("no final answer")
    text = _text(row, "solution")
    pieces = split_signed_solutions(text) if text else []
    meta = _metadata(row, index, "url", "year")
    meta["other_solutions"] = pieces[1:]
    return Problem(
        id=_problem_id(ctx, row.get("id"), index),
        question=question,
        answer=answer,
        solution=pieces[0] if pieces else None,
        source=ctx.dataset,
        metadata=meta,
    )


# A JSON export decoded "\frac" as form feed + "rac" and "\triangle" as TAB + "riangle".
_CONTROL_ESCAPE = re.compile(r"([\x0c\t])(?=[a-z])")


def _repair_control_chars(text: str) -> str:
    """Undo the AIME 2025 export defect: form feed/TAB before a letter back to ``\\f``/``\\t``."""
    return _CONTROL_ESCAPE.sub(lambda m: "\\f" if m.group(1) == "\x0c" else "\\t", text)


def parse_answer_only(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """AIME 2025 and AMC 2023: question and final answer only, so ``solution=None``.

    Numeric answers are formatted (``27.0`` -> ``"27"``). Form-feed/TAB characters in the text
    are the known AIME 2025 export defect and are turned back into ``\\f``/``\\t``.
    """
    question = _question(row, "problem", "question")
    answer = _text(row, "answer")
    if answer is None:
        raise SkipRow("no final answer")
    repaired = _repair_control_chars(question)
    meta = _metadata(row, index, "url")
    if repaired != question:
        meta["repaired_control_chars"] = True
    return Problem(
        id=_problem_id(ctx, row.get("id"), index),
        question=repaired,
        answer=answer,
        solution=None,
        source=ctx.dataset,
        metadata=meta,
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [str(item).strip() for item in items if item is not None and str(item).strip()]


def parse_olympiadbench(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """OlympiadBench: ``solution`` and ``final_answer`` are lists.

    The first solution is the hint source (the rest go to ``metadata["other_solutions"]``);
    several final answers are joined with ``", "`` and the ``$`` around them are removed.
    """
    question = _question(row, "question", "problem")
    context = _text(row, "context")
    if context:  # no row of the English text-only set has one, but other subsets do
        question = f"{context}\n\n{question}"
    answers = [strip_math_delimiters(a) for a in _as_list(row.get("final_answer"))]
    if not answers:
        raise SkipRow("no final answer", "empty 'final_answer' list")
    solutions = _as_list(row.get("solution"))
    meta = _metadata(
        row, index, "subfield", "answer_type", "unit", "is_multiple_answer", "error", "difficulty"
    )
    meta["other_solutions"] = solutions[1:]
    return Problem(
        id=_problem_id(ctx, row.get("id"), index),
        question=question,
        answer=", ".join(answers),
        solution=solutions[0] if solutions else None,
        source=ctx.dataset,
        metadata=meta,
    )


def parse_deepmath(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """DeepMath-103K: ``question``, ``final_answer``, solution from ``r1_solution_{k}``.

    ``k`` is the ``solution_index`` option (1..3, default 1). R1 traces keep only the text after
    ``</think>``: the thinking part is long, repetitive exploration, a poor hint.
    """
    question = _question(row, "question", "problem")
    answer = _text(row, "final_answer", "answer")
    if answer is None:
        raise SkipRow("no final answer")
    k = ctx.options.get("solution_index", 1)
    raw = _text(row, f"r1_solution_{k}")
    solution = after_think(raw) if raw else ""
    return Problem(
        id=_problem_id(ctx, row.get("id"), index),
        question=question,
        answer=answer,
        solution=solution or None,
        source=ctx.dataset,
        metadata=_metadata(row, index, "difficulty", "topic"),
    )


#: Keys tried for each of our field names when a generic file or hub id has no ``fields`` mapping.
GENERIC_FIELDS: dict[str, tuple[str, ...]] = {
    "question": ("question", "problem"),
    "answer": ("answer", "final_answer"),
    "solution": ("solution",),
    "id": ("id", "unique_id", "idx"),
}


def _short_scalars(row: Mapping[str, Any], used: set[str], index: int) -> dict[str, Any]:
    """Other columns kept as metadata: numbers, booleans and strings up to 200 characters."""
    meta: dict[str, Any] = {}
    for key, value in row.items():
        if key in used or value is None:
            continue
        if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 200):
            meta[key] = value
    meta["row_index"] = index
    return meta


def parse_generic(row: Mapping[str, Any], index: int, ctx: RowContext) -> Problem:
    """Any file or hub dataset, through ``ctx.fields`` (our name -> row keys to try).

    The answer is the answer column, else the last ``\\boxed{}`` of the solution column.
    """
    keys = ctx.fields
    question = _question(row, *keys["question"])
    steps = _value(row, *keys.get("solution", ()))
    if isinstance(steps, (list, tuple)):  # a step-annotated solution: one string per step
        solution = join_steps(steps)
    else:
        solution = _text(row, *keys.get("solution", ()))
    answer = _text(row, *keys.get("answer", ()))
    if answer is None and solution:
        answer = last_boxed(solution)
    if answer is None:
        raise SkipRow("no final answer", "no answer value and no \\boxed{} in the solution")
    used = {key for candidates in keys.values() for key in candidates}
    return Problem(
        id=_problem_id(ctx, _value(row, *keys.get("id", ())), index),
        question=question,
        answer=answer,
        solution=solution,
        source=ctx.dataset,
        metadata=_short_scalars(row, used, index),
    )


#: Parser name -> row parser; dataset specs refer to these by name.
PARSERS: dict[str, RowParser] = {
    "gsm8k": parse_gsm8k,
    "math": parse_math,
    "aime24": parse_aime24,
    "answer_only": parse_answer_only,
    "olympiadbench": parse_olympiadbench,
    "deepmath": parse_deepmath,
    "generic": parse_generic,
}
