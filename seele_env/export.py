"""Export problem sets, with hint units and hint prefixes, to the layouts other trainers read.

Two layouts (see ``docs/integrations.md``):

* ``"verl"`` — verl's RL parquet: ``data_source``, ``prompt`` (a chat list), ``ability``,
  ``reward_model`` (``{"style": "rule", "ground_truth": answer}``) and ``extra_info``.
* ``"trl"`` — what TRL's ``GRPOTrainer`` and verifiers environments read: ``prompt`` (a chat
  list, or text with ``conversational=False``), ``answer`` and ``info``.

``extra_info`` / ``info`` holds the problem's solution split into hint units (``hint_units``),
the hint given (``hint_text``, ``hint_len``, ``n_units``, ``hint_rate``) and its ``placement``:
enough for :mod:`seele_env.rewards` to verify ``hint_text + completion`` when the hint starts
the response, and for a trainer-side curriculum to pick its own prefixes later.

Hint rates are pinned (one rate for all problems, or one per problem id) or chosen by a
curriculum: pass a curriculum-wrapped env and ``hint_rate=None`` to export the rates of its
current round (freeze it first, ``frozen=True``, to leave its state untouched).

Example:
    >>> from seele_env.problems import Problem
    >>> p = Problem("p/0", "What is 2 + 3 + 4?", "9",
    ...             "Step 1: 2 + 3 = 5.\\nStep 2: 5 + 4 = 9, so \\\\boxed{9}.")
    >>> row = export_rows([p], layout="trl", hint_rate=0.5, placement="response")[0]
    >>> row["prompt"][-1], row["answer"], row["info"]["hint_units"]
    ({'role': 'assistant', 'content': 'Step 1: 2 + 3 = 5.\\n'}, '9', ['Step 1: 2 + 3 = 5.\\n', \
'Step 2: 5 + 4 = 9, so \\\\boxed{9}.'])
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

from seele_env.errors import DatasetError, HintError
from seele_env.hints import (
    BOXED_INSTRUCTION,
    PLACEMENTS,
    SolutionUnits,
    check_hint_rate,
    hint_length,
    render_prompt,
    split_units,
)
from seele_env.problems import Problem

__all__ = ["LAYOUTS", "export", "export_rows", "to_dataset"]

LAYOUTS = ("verl", "trl")
SUFFIXES = (".parquet", ".jsonl", ".json")

HintRates = float | Mapping[str, float] | None


def export_rows(
    source: Sequence[Problem] | gym.Env[str, str],
    *,
    layout: str = "verl",
    hint_rate: HintRates = 0.0,
    hint_unit: str | None = None,
    placement: str = "prompt",
    conversational: bool = True,
    template: str = "r1",
    system_prompt: str | None = None,
    data_source: str | None = None,
    split: str = "train",
) -> list[dict[str, Any]]:
    """One row per problem in ``layout``, with its hint units and a hint prefix.

    Args:
        source: Problems (a list or :class:`~seele_env.loaders.ProblemSet`), a
            :class:`~seele_env.env.MathHintEnv` (its problems, hint unit and tokenizer), or such
            an env wrapped in a curriculum.
        layout: ``"verl"`` or ``"trl"``.
        hint_rate: The share of each solution to reveal: a float for every problem, a mapping
            ``problem_id -> rate``, or ``None`` for the rates ``source``'s curriculum chooses
            now (its ``hint_rates``; an env without one gives its ``default_hint_rate``).
        hint_unit: ``"steps"``, ``"sentences"`` or ``"tokens"``; default: the env's, else
            ``"steps"``.
        placement: ``"prompt"`` (the hint follows the question in the user turn) or
            ``"response"`` (the hint starts the answer: TRL continues a final assistant message
            or the text prompt; verl always opens a fresh assistant turn, so it needs
            ``"prompt"``).
        conversational: ``"trl"`` only: ``prompt`` as chat messages (default) or as text
            rendered with ``template``.
        template: For text prompts: ``"r1"``, ``"plain"`` or a string containing
            ``{question}`` (see :func:`~seele_env.hints.render_prompt`).
        system_prompt: An optional system message at the head of chat prompts.
        data_source: verl's ``data_source``; default each problem's ``source``.
        split: Written to ``extra_info["split"]`` (verl's convention).

    Raises:
        HintError: An unknown layout, unit or placement, a rate outside [0, 1], a rate > 0 for
            a problem without a solution, or ``placement="response"`` with ``layout="verl"``.
    """
    if layout not in LAYOUTS:
        raise HintError(f"layout={layout!r} is not one of {LAYOUTS}.")
    if placement not in PLACEMENTS:
        raise HintError(f"placement={placement!r} is not one of {PLACEMENTS}.")
    if layout == "verl" and placement == "response":
        raise HintError(
            "layout='verl' needs placement='prompt': verl renders chat prompts with "
            "add_generation_prompt=True, so it cannot start the response with a hint. Use "
            "layout='trl' for response-side hints."
        )
    problems, units_of, rates = _resolve(source, hint_rate, hint_unit)
    rows = []
    for index, (problem, rate) in enumerate(zip(problems, rates, strict=True)):
        units = units_of(problem)
        info = _hint_info(problem, units, rate, placement, index, split)
        prompt = _prompt(problem.question, info["hint_text"], layout, placement,
                         conversational, template, system_prompt)  # fmt: skip
        if layout == "verl":
            rows.append({
                "data_source": data_source or problem.source or "seele",
                "prompt": prompt,
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": problem.answer},
                "extra_info": info,
            })  # fmt: skip
        else:
            rows.append({"prompt": prompt, "answer": problem.answer, "info": info})
    return rows


def _resolve(
    source: Sequence[Problem] | gym.Env[str, str], hint_rate: HintRates, hint_unit: str | None
) -> tuple[list[Problem], Any, list[float]]:
    """Problems, a function giving each one's units, and each one's requested hint rate."""
    if isinstance(source, gym.Env):
        from seele_env.curricula.base import find_curriculum  # only needed for env sources
        from seele_env.errors import EnvUsageError

        base = source.unwrapped
        if not hasattr(base, "problems") or not hasattr(base, "units"):
            raise HintError(
                f"source is a {type(base).__name__}, not a MathHintEnv; pass problems or a "
                "MathHintEnv (optionally wrapped in a curriculum)."
            )
        problems = list(base.problems)
        if hint_unit is not None and hint_unit != base.hint_unit:
            raise HintError(
                f"hint_unit={hint_unit!r} differs from the env's hint_unit={base.hint_unit!r}; "
                "leave hint_unit=None to use the env's, or pass the problems instead of the env."
            )

        def units_of(p: Problem) -> SolutionUnits:
            return base.units(p.id)

        if hint_rate is None:
            try:
                curriculum = find_curriculum(source)
            except EnvUsageError:  # a bare env: its default rate, as its reset() would use
                hint_rate = base.default_hint_rate
            else:
                chosen = curriculum.hint_rates([p.id for p in problems])
                return problems, units_of, [float(r) for r in chosen]
    else:
        problems = list(source)
        bad = [p for p in problems if not isinstance(p, Problem)]
        if bad:
            raise HintError(
                f"source holds a {type(bad[0]).__name__}, not a Problem; pass a ProblemSet, "
                "a list of Problems or a MathHintEnv."
            )
        unit = hint_unit or "steps"
        split_units(None, unit)  # an unknown unit or a missing tokenizer fails here, once

        def units_of(p: Problem) -> SolutionUnits:
            return split_units(p.solution, unit)

        if hint_rate is None:
            raise HintError(
                "hint_rate=None takes the rates from a curriculum; pass a curriculum-wrapped "
                "env as source, or a rate (e.g. hint_rate=0.5)."
            )
    if not problems:
        raise DatasetError("nothing to export: the source has no problems.")
    if isinstance(hint_rate, Mapping):
        missing = [p.id for p in problems if p.id not in hint_rate]
        if missing:
            raise HintError(
                f"hint_rate maps no rate for {len(missing)} problem(s), e.g. {missing[0]!r}; "
                "give every problem id a rate."
            )
        return problems, units_of, [check_hint_rate(hint_rate[p.id]) for p in problems]
    rate = check_hint_rate(hint_rate)
    return problems, units_of, [rate] * len(problems)


def _hint_info(
    problem: Problem, units: SolutionUnits, rate: float, placement: str, index: int, split: str
) -> dict[str, Any]:
    if rate > 0 and not problem.has_solution:
        raise HintError(
            f"hint_rate={rate} was asked for problem {problem.id!r}, which has no reference "
            "solution (an answer-only dataset); give it rate 0 (a mapping hint_rate={id: rate})."
        )
    hint_len = hint_length(rate, units.n_units)
    return {
        "index": index,
        "split": split,
        "problem_id": problem.id,
        "question": problem.question,
        "answer": problem.answer,
        "source": problem.source,
        "hint_unit": units.unit,
        "hint_units": list(units.pieces),
        "n_units": units.n_units,
        "hint_len": hint_len,
        "hint_rate": hint_len / units.n_units if units.n_units else 0.0,
        "requested_hint_rate": rate,
        "hint_text": units.prefix(hint_len),
        "placement": placement,
    }


def _prompt(
    question: str,
    hint_text: str,
    layout: str,
    placement: str,
    conversational: bool,
    template: str,
    system_prompt: str | None,
) -> str | list[dict[str, str]]:
    if layout == "trl" and not conversational:
        return render_prompt(question, hint_text, template=template, placement=placement)[1]
    content = question
    if placement == "prompt" and hint_text:
        # The same wording render_prompt uses for a prompt-side hint.
        content = render_prompt(question, hint_text, template="{question}", placement="prompt")[0]
    messages = [{"role": "user", "content": f"{content}\n{BOXED_INSTRUCTION}"}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    if placement == "response" and hint_text:
        messages.append({"role": "assistant", "content": hint_text})  # TRL continues it
    return messages


def to_dataset(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a ``datasets.Dataset`` (needs the ``data`` extra)."""
    try:
        import datasets
    except ImportError as err:
        raise DatasetError(
            'exporting needs the `datasets` package: pip install "seele-rl[data]".'
        ) from err
    return datasets.Dataset.from_list([dict(r) for r in rows])


def export(
    source: Sequence[Problem] | gym.Env[str, str],
    path: str | os.PathLike[str],
    **kwargs: Any,
) -> Path:
    """Write :func:`export_rows` to ``path`` (``.parquet``, ``.jsonl`` or ``.json``).

    Args:
        source: As for :func:`export_rows`.
        path: The output file; its suffix picks the format (verl reads parquet).
        **kwargs: :func:`export_rows`'s keywords (``layout``, ``hint_rate``...).

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DatasetError(f"{path}: unsupported suffix {path.suffix!r}; use one of {SUFFIXES}.")
    dataset = to_dataset(export_rows(source, **kwargs))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        dataset.to_parquet(str(path))
    else:
        dataset.to_json(str(path), lines=path.suffix == ".jsonl", force_ascii=False)
    return path


# -- the `seele export` command ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele export``."""
    parser.add_argument("output", help="the file to write: .parquet (verl), .jsonl or .json")
    parser.add_argument("--layout", choices=LAYOUTS, default="verl", help="default: verl")
    parser.add_argument(
        "--dataset", default="procedural", help="a dataset name, 'file', a hub id or 'procedural'"
    )
    parser.add_argument("--data-path", help="the dataset's local file or folder")
    parser.add_argument("--split", help="the split to load and export")
    parser.add_argument("--limit", type=int, help="export only the first N problems")
    parser.add_argument("--num-problems", type=int, default=1000, help="procedural: how many")
    parser.add_argument("--hint-rate", type=float, default=0.0, help="share of each solution shown")
    parser.add_argument("--hint-unit", default="steps", help="steps (default), sentences")
    parser.add_argument("--placement", choices=PLACEMENTS, default="prompt",
                        help="prompt (default) or response (trl layout only)")  # fmt: skip
    parser.add_argument(
        "--text", action="store_true", help="trl layout: text prompts (r1 template), not chat"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``seele export``; returns the exit status."""
    import sys

    from seele_env.loaders import load_problems
    from seele_env.procedural import generate_problems

    try:
        if args.dataset == "procedural":
            problems: Sequence[Problem] = generate_problems(args.limit or args.num_problems)
        else:
            problems = load_problems(
                args.dataset, data_path=args.data_path, split=args.split, limit=args.limit
            )
        path = export(problems, args.output, layout=args.layout, hint_rate=args.hint_rate,
                      hint_unit=args.hint_unit, placement=args.placement,
                      conversational=not args.text, split=args.split or "train")  # fmt: skip
    except (DatasetError, HintError) as error:
        print(f"seele export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(problems)} rows ({args.layout} layout) to {path}")
    return 0
