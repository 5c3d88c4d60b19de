"""Tests for seele_env.procedural.

Answers are checked by routes independent of the generator: arithmetic by a small
recursive-descent evaluator over the question text and by folding the recorded operations with
exact fractions; linear by parsing every equation in the question and the steps into
(x coefficient, constant) pairs and substituting the answer; word by replaying the recorded story.
"""

from __future__ import annotations

import doctest
import itertools
import operator
import re
from fractions import Fraction

import math_verify
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seele_env.procedural as procedural
from seele_env.errors import DatasetError
from seele_env.problems import Problem
from seele_env.procedural import (
    FAMILIES,
    MAX_DIFFICULTY,
    Draft,
    generate_problem,
    generate_problems,
)

BASE_FAMILIES = ("arithmetic", "linear", "word")
DIFFICULTIES = (1, 2, 3, 4, 5)
N_PER_CELL = 200
INT_RE = re.compile(r"-?\d+")
BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")


@pytest.fixture(scope="module")
def cells() -> dict[tuple[str, int], list[Problem]]:
    """200 problems for every (family, difficulty) pair."""
    return {
        (family, d): generate_problems(N_PER_CELL, seed=100 + d, families=(family,), difficulty=d)
        for family in BASE_FAMILIES
        for d in DIFFICULTIES
    }


def all_problems(cells: dict[tuple[str, int], list[Problem]]) -> list[Problem]:
    return [p for problems in cells.values() for p in problems]


def check_format(problem: Problem) -> list[str]:
    """Format checks shared by every family; returns the step bodies."""
    assert problem.solution is not None
    assert not problem.solution.endswith("\n")
    lines = problem.solution.split("\n")
    assert len(lines) == problem.metadata["n_steps"] >= 2
    bodies = []
    for k, line in enumerate(lines, start=1):
        assert line.startswith(f"Step {k}: "), line
        bodies.append(line[len(f"Step {k}: ") :])
    assert re.fullmatch(r"-?\d+", problem.answer) and str(int(problem.answer)) == problem.answer
    assert lines[-1].endswith(f" The answer is \\boxed{{{problem.answer}}}.")
    assert BOXED_RE.findall(problem.solution) == [problem.answer]
    for text in (problem.question, problem.solution):
        # Integers only, plain text only, bounded sizes.
        assert not re.search(r"\d\.\d|\d/\d|\$", text), text
        assert all(abs(int(n)) <= 999 for n in INT_RE.findall(text)), text
    return bodies


# ------------------------------------------------------------------ independent computations


def evaluate_expression(text: str) -> Fraction:
    """Evaluate ints, + - * / and brackets by recursive descent (no eval of any kind)."""
    tokens = re.findall(r"\d+|[-+*/()]", text)
    assert "".join(tokens) == text.replace(" ", ""), text
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def atom() -> Fraction:
        if peek() == "(":
            take()
            value = expression()
            assert take() == ")"
            return value
        return Fraction(int(take()))

    def term() -> Fraction:
        value = atom()
        while peek() in ("*", "/"):
            op, right = take(), atom()
            value = value * right if op == "*" else value / right
        return value

    def expression() -> Fraction:
        value = term()
        while peek() in ("+", "-"):
            op, right = take(), term()
            value = value + right if op == "+" else value - right
        return value

    result = expression()
    assert position == len(tokens)
    return result


TERM_RE = re.compile(r"\s*(?P<sign>[+-]?)\s*(?P<k>\d*)(?P<var>x|\(x (?P<op>[+-]) (?P<m>\d+)\))?")


def parse_side(text: str) -> tuple[int, int]:
    """(x coefficient, constant) of one side of a linear equation, e.g. ``3(x - 4) + 2x - 7``."""
    position, coef, const = 0, 0, 0
    while position < len(text):
        match = TERM_RE.match(text, position)
        assert match and match.end() > position and (match["k"] or match["var"]), text
        assert position == 0 or match["sign"], f"missing sign in {text!r}"
        sign = -1 if match["sign"] == "-" else 1
        k = int(match["k"]) if match["k"] else 1
        if match["var"] is None:
            const += sign * k
        else:
            coef += sign * k
            if match["m"]:
                const += sign * k * int(match["m"]) * (1 if match["op"] == "+" else -1)
        position = match.end()
    return coef, const


def holds_uniquely(equation: str, x: int) -> bool:
    """Whether ``x`` is the one solution of a linear equation given as text."""
    left, right = equation.split(" = ")
    (a, b), (c, d) = parse_side(left), parse_side(right)
    return a != c and a * x + b == c * x + d


ARITH_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def check_arithmetic(problem: Problem, bodies: list[str]) -> None:
    meta = problem.metadata
    assert problem.question.startswith("Compute ") and problem.question.endswith(".")
    expression = problem.question[len("Compute ") : -1]
    assert evaluate_expression(expression) == int(problem.answer)
    operands = [meta["start"]] + [b for _, b in meta["operations"]]
    assert [int(n) for n in INT_RE.findall(expression)] == operands
    assert len(meta["operations"]) == meta["difficulty"] + 1 == len(bodies)
    value = Fraction(meta["start"])
    for (op, b), body in zip(meta["operations"], bodies, strict=True):
        new = ARITH_OPS[op](value, Fraction(b))
        assert new.denominator == 1, "an intermediate result is not an integer"
        assert body.startswith(f"{value} {op} {b} = {new}."), body
        value = new
    assert value == int(problem.answer)


def check_linear(problem: Problem, bodies: list[str]) -> None:
    x = int(problem.answer)
    question = problem.question
    assert question.startswith("Solve for x: ") and question.endswith(".")
    assert holds_uniquely(question[len("Solve for x: ") : -1], x)
    # Every intermediate equation is equivalent: the answer solves each, and only it.
    for body in bodies:
        equation = body.split(": ", 1)[1].split(".")[0]
        assert holds_uniquely(equation, x), body
    assert bodies[-1].startswith("Divide both sides by ") and f": x = {x}." in bodies[-1]
    # Substituting into the recorded terms, as a second route.
    value = {"x": lambda t: t[1] * x, "c": lambda t: t[1], "b": lambda t: t[1] * (x + t[2])}
    meta = problem.metadata
    assert sum(value[t[0]](t) for t in meta["lhs"]) == sum(value[t[0]](t) for t in meta["rhs"])


def check_word(problem: Problem, bodies: list[str]) -> None:
    meta = problem.metadata
    count, numbers = meta["start"], [meta["start"]]
    assert len(meta["changes"]) == meta["difficulty"] + 1 == len(bodies)
    for change, body in zip(meta["changes"], bodies, strict=True):
        if change[0] == "gain":
            new = count + change[1]
            assert f", so {count} + {change[1]} = {new} {meta['item']}." in body
        elif change[0] == "loss":
            new = count - change[1]
            assert f", so {count} - {change[1]} = {new} {meta['item']}." in body
        else:
            assert change[0] == "group" and meta["difficulty"] >= 3
            new = count + change[1] * change[2]
            assert f"{change[1]} * {change[2]} = {change[1] * change[2]} and {count} + " in body
        assert new >= 2
        numbers += change[1:]
        count = new
    assert count == int(problem.answer)
    assert [int(n) for n in INT_RE.findall(problem.question)] == numbers
    assert problem.question.startswith(f"{meta['name']} has {meta['start']} {meta['item']}. ")


CHECKS = {"arithmetic": check_arithmetic, "linear": check_linear, "word": check_word}


@pytest.mark.parametrize("family", BASE_FAMILIES)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_every_problem_is_well_formed_and_correct(cells, family, difficulty):
    problems = cells[family, difficulty]
    assert len(problems) == N_PER_CELL
    for i, problem in enumerate(problems):
        assert problem.id == f"procedural/{family}/d{difficulty}/{i:06d}"
        assert problem.source == f"procedural/{family}"
        meta = problem.metadata
        assert (meta["family"], meta["difficulty"]) == (family, difficulty)
        assert meta["seed"] == 100 + difficulty
        CHECKS[family](problem, check_format(problem))


@pytest.mark.parametrize("family", BASE_FAMILIES)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_answer_verifies_against_last_step_with_math_verify(cells, family, difficulty):
    # math-verify itself, exactly as a gold answer is checked; the package's own verifier,
    # which wraps it in worker processes, is exercised in the next test.
    for problem in cells[family, difficulty][:8]:
        last_step = problem.solution.split("\n")[-1]
        gold = math_verify.parse("\\boxed{" + problem.answer + "}")
        assert math_verify.verify(gold, math_verify.parse(last_step)), problem.solution
        wrong = math_verify.parse("\\boxed{" + str(int(problem.answer) + 1) + "}")
        assert not math_verify.verify(wrong, math_verify.parse(last_step))


def test_answer_verifies_with_the_package_verifier(cells):
    verify_module = pytest.importorskip("seele_env.verify")
    if not hasattr(verify_module, "verify"):
        pytest.skip("seele_env.verify has no verify(gold, completion) function")
    for (family, difficulty), problems in cells.items():
        for problem in problems[:4]:
            last_step = problem.solution.split("\n")[-1]
            verdict = verify_module.verify(problem.answer, last_step)
            assert verdict.correct, (family, difficulty, problem.solution, verdict)
            assert verdict.extracted_answer == problem.answer


def test_negative_answers_occur(cells):
    # The verifier and tokenizer must see minus signs; they come from arithmetic and linear.
    for family in ("arithmetic", "linear"):
        assert any(p.answer.startswith("-") for p in all_problems(cells) if family in p.id)


def test_difficulty_is_monotone_in_mean_steps_and_number_size(cells):
    for family in BASE_FAMILIES:
        steps = [np.mean([p.metadata["n_steps"] for p in cells[family, d]]) for d in DIFFICULTIES]
        assert all(a < b for a, b in itertools.pairwise(steps)), (family, steps)
        sizes = [
            np.mean(
                [max(abs(int(n)) for n in INT_RE.findall(p.question)) for p in cells[family, d]]
            )
            for d in DIFFICULTIES
        ]
        assert sizes[0] < sizes[-1], (family, sizes)


def test_vocabulary_is_small(cells):
    words = {
        w for p in all_problems(cells) for w in re.findall(r"[A-Za-z]+", p.question + p.solution)
    }
    assert len(words) < 80, sorted(words)


def test_deterministic_per_seed_and_seeds_differ():
    first = generate_problems(60, seed=5, difficulty=(1, 5))
    again = generate_problems(60, seed=5, difficulty=(1, 5))
    assert first == again
    assert [p.metadata for p in first] == [p.metadata for p in again]
    other = generate_problems(60, seed=6, difficulty=(1, 5))
    assert [p.question for p in first] != [p.question for p in other]


def test_prefix_stable_and_fixed_range_equals_int():
    assert generate_problems(10, seed=3) == generate_problems(30, seed=3)[:10]
    assert generate_problems(9, seed=3, difficulty=4) == generate_problems(
        9, seed=3, difficulty=(4, 4)
    )


def test_round_robin_families_and_unique_ids():
    families = ("word", "linear", "word", "arithmetic")
    problems = generate_problems(40, seed=1, families=families, difficulty=(1, 3))
    assert [p.metadata["family"] for p in problems] == [families[i % 4] for i in range(40)]
    assert len({p.id for p in problems}) == 40
    assert {p.metadata["difficulty"] for p in problems} == {1, 2, 3}


def test_default_call_and_empty():
    problems = generate_problems(6)
    assert [p.metadata["family"] for p in problems] == list(BASE_FAMILIES) * 2
    assert all(p.metadata["difficulty"] == 2 and p.metadata["seed"] == 0 for p in problems)
    assert generate_problems(0) == []


def test_generate_problem_with_own_rng():
    problem = generate_problem("linear", np.random.default_rng(9), 3, 17)
    assert problem.id == "procedural/linear/d3/000017"
    assert problem.metadata["seed"] is None
    assert problem == generate_problem("linear", np.random.default_rng(9), 3, 17)


def test_registry_accepts_a_new_family(monkeypatch):
    def constant(rng: np.random.Generator, difficulty: int) -> Draft:
        return Draft("What is 2 + 2?", ("2 + 2 = 4.", "So it is 4."), 4, {"k": difficulty})

    monkeypatch.setitem(FAMILIES, "constant", constant)
    (problem,) = generate_problems(1, families=("constant",), difficulty=3)
    assert problem.solution == "Step 1: 2 + 2 = 4.\nStep 2: So it is 4. The answer is \\boxed{4}."
    assert problem.metadata["k"] == 3 and problem.source == "procedural/constant"


def test_docstring_examples():
    assert doctest.testmod(procedural).failed == 0


# --------------------------------------------------------------------------------- errors

ERRORS = [
    ({"n": -1}, r"n must be an int >= 0, got -1"),
    ({"n": 2.5}, r"n must be an int >= 0, got 2\.5"),
    ({"n": True}, r"n must be an int >= 0, got True"),
    ({"seed": -3}, r"seed must be an int >= 0, got -3; e\.g\. seed=0"),
    ({"seed": "0"}, r"seed must be an int >= 0, got '0'"),
    ({"families": "linear"}, r"non-empty sequence of family names, got 'linear'.*\('linear',\)"),
    ({"families": ()}, r"non-empty sequence of family names, got \(\)"),
    ({"families": ("lineer",)}, r"Unknown procedural family 'lineer'\. Did you mean 'linear'\?"),
    ({"families": ("zzz",)}, r"Unknown procedural family 'zzz'\. Known families: \["),
    ({"families": ("word", 3)}, r"Unknown procedural family 3\."),
    ({"difficulty": 0}, r"difficulty must be an int from 1 to 10, got 0"),
    ({"difficulty": 11}, r"difficulty must be an int from 1 to 10, got 11"),
    ({"difficulty": 2.0}, r"difficulty must be an int from 1 to 10, got 2\.0"),
    ({"difficulty": True}, r"difficulty must be an int from 1 to 10, got True"),
    ({"difficulty": (3, 1)}, r"difficulty range \(3, 1\) has lo > hi; pass it as \(1, 3\)"),
    ({"difficulty": (1, 2, 3)}, r"must be a pair \(lo, hi\), got \(1, 2, 3\)"),
    ({"difficulty": (0, 2)}, r"difficulty lo must be an int from 1 to 10, got 0"),
    ({"difficulty": (1, 12)}, r"difficulty hi must be an int from 1 to 10, got 12"),
]


@pytest.mark.parametrize(("kwargs", "message"), ERRORS)
def test_generate_problems_errors(kwargs, message):
    kwargs = {"n": 3, **kwargs}
    with pytest.raises(DatasetError, match=message):
        generate_problems(kwargs.pop("n"), **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("arithmetc", 0, 1, 0), r"Did you mean 'arithmetic'\?"),
        (("word", "rng", 1, 0), r"rng must be a numpy\.random\.Generator, got str"),
        (("word", np.random.RandomState(0), 1, 0), r"got RandomState; make one with"),
        (("word", None, 0, 0), r"difficulty must be an int from 1 to 10, got 0"),
        (("word", None, 1, -1), r"index must be an int >= 0, got -1"),
    ],
)
def test_generate_problem_errors(args, message):
    family, rng, difficulty, index = args
    if rng is None:
        rng = np.random.default_rng(0)
    with pytest.raises(DatasetError, match=message):
        generate_problem(family, rng, difficulty, index)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        generate_problems(-1)


# ----------------------------------------------------------------------------- properties

difficulties = st.one_of(
    st.integers(1, MAX_DIFFICULTY),
    st.tuples(st.integers(1, MAX_DIFFICULTY), st.integers(1, MAX_DIFFICULTY)).map(
        lambda pair: tuple(sorted(pair))
    ),
)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 12),
    seed=st.integers(0, 2**63 - 1),
    families=st.lists(st.sampled_from(BASE_FAMILIES), min_size=1, max_size=4).map(tuple),
    difficulty=difficulties,
)
def test_any_valid_arguments_give_valid_deterministic_problems(n, seed, families, difficulty):
    problems = generate_problems(n, seed=seed, families=families, difficulty=difficulty)
    assert problems == generate_problems(n, seed=seed, families=families, difficulty=difficulty)
    assert len(problems) == n and len({p.id for p in problems}) == n
    lo, hi = (difficulty, difficulty) if isinstance(difficulty, int) else difficulty
    for i, problem in enumerate(problems):
        assert problem.metadata["family"] == families[i % len(families)]
        assert lo <= problem.metadata["difficulty"] <= hi
        CHECKS[problem.metadata["family"]](problem, check_format(problem))


@given(st.integers(max_value=-1))
def test_any_negative_n_is_rejected(n):
    with pytest.raises(DatasetError, match=f"got {n}"):
        generate_problems(n)


@given(st.integers().filter(lambda d: not 1 <= d <= MAX_DIFFICULTY))
def test_any_out_of_range_difficulty_is_rejected(difficulty):
    with pytest.raises(DatasetError, match=f"got {difficulty}"):
        generate_problems(1, difficulty=difficulty)


@given(st.text(max_size=12).filter(lambda name: name not in FAMILIES))
def test_any_unknown_family_is_rejected(name):
    with pytest.raises(DatasetError, match="Unknown procedural family"):
        generate_problems(1, families=(name,))


# ------------------------------------------------------------------------- the running family


@pytest.mark.parametrize("difficulty", [1, 3, 5, 7, 10])
def test_running_problems_are_well_formed_and_correct(difficulty):
    problems = generate_problems(200, seed=5, families=("running",), difficulty=difficulty)
    for problem in problems:
        bodies = check_format(problem)
        assert problem.metadata["n_steps"] == difficulty + 1
        # Independent route: read the question's numbers and signs, and add them up.
        expression = problem.question.removeprefix("Compute ").removesuffix(".")
        start, *pairs = re.findall(r"^\d+|[-+] \d+", expression)
        value, values = int(start), [int(start)]
        for pair in pairs:
            sign, digit = pair.split()
            assert 1 <= int(digit) <= 9, problem.question  # one digit per step
            value += int(digit) if sign == "+" else -int(digit)
            values.append(value)
        assert len(pairs) == difficulty + 1
        assert int(problem.answer) == value
        assert all(0 <= v <= 99 for v in values), problem.question
        # Every step is "previous op digit = next", in the question's order.
        for k, body in enumerate(bodies):
            sign, digit = pairs[k].split()
            assert body.startswith(f"{values[k]} {sign} {digit} = {values[k + 1]}."), body


def test_running_family_draws_both_signs_and_many_starts():
    problems = generate_problems(300, seed=1, families=("running",), difficulty=4)
    ops = [op for p in problems for op, _ in p.metadata["operations"]]
    assert 0.35 < ops.count("+") / len(ops) < 0.65
    assert len({p.metadata["start"] for p in problems}) > 50


# Hand-written completions for "Compute 78 - 5 + 3." (start 78; steps 78 - 5 = 73, 73 + 3 = 76).
STEP_CASES = [
    ("Step 1: 78 - 5 = 73.\nStep 2: 73 + 3 = 76. The answer is \\boxed{76}.", 1, [True, True]),
    # A slip in step 1 makes it wrong; step 2 applied correctly to the model's own 74 is right.
    ("Step 1: 78 - 5 = 74.\nStep 2: 74 + 3 = 77.", 1, [False, True]),
    # Step 2 starts from the reference value, not the model's: wrong.
    ("Step 1: 78 - 5 = 74.\nStep 2: 73 + 3 = 76.", 1, [False, False]),
    # The wrong operation copied from the question (the operand of step 1 again).
    ("Step 1: 78 - 5 = 73.\nStep 2: 73 - 5 = 68.", 1, [True, False]),
    ("Step 1: 78 - 5 = 73.", 1, [True, False]),  # a missing step is wrong
    ("The answer is 76.", 1, [False, False]),
    # After a hint of one step the model writes step 2 only; it starts from the reference 73.
    ("Step 2: 73 + 3 = 76. The answer is \\boxed{76}.", 2, [True]),
    ("Step 2: 74 + 3 = 77.", 2, [False]),
    ("", 3, []),  # the hint held every step
]


@pytest.mark.parametrize(("completion", "first_step", "expected"), STEP_CASES)
def test_check_steps_by_hand(completion, first_step, expected):
    problem = generate_problems(1, seed=0, families=("running",), difficulty=1)[0]
    assert problem.question == "Compute 78 - 5 + 3."
    assert procedural.check_steps(problem, completion, first_step=first_step) == expected


def test_check_steps_reads_arithmetic_chains_and_refuses_others():
    problem = generate_problem("arithmetic", np.random.default_rng(3), 2, 0)
    assert problem.question == "Compute ((17 + 4) + 4) / 5."
    assert procedural.check_steps(problem, problem.solution) == [True, True, True]
    assert procedural.check_steps(problem, "Step 3: 25 / 5 = 6.", first_step=3) == [False]
    linear = generate_problems(1, seed=0, families=("linear",))[0]
    with pytest.raises(ValueError, match="not a chain problem"):
        procedural.check_steps(linear, linear.solution)


def test_check_steps_reads_a_bounded_prefix_of_huge_output():
    problem = generate_problems(1, seed=0, families=("running",), difficulty=1)[0]
    huge = "x" * 50_000 + problem.solution  # beyond the bounded prefix: nothing is read
    assert procedural.check_steps(problem, huge) == [False, False]
