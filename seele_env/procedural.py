"""Procedural math problems with worked step-by-step solutions: the embedded default dataset.

With no dataset given, the environment serves problems from :func:`generate_problems`. They are
made for RL from verifiable rewards with hints, and for tiny models trained from scratch:

* The surface form is short and regular (a small vocabulary, one phrasing per operation, plain
  text without ``$...$``), so a small BPE tokenizer copes.
* Every answer is an integer (possibly negative), so verification is exact.
* The solution has one step per line, ``Step k: ...`` for k = 1..N, and the last step ends with
  ``The answer is \\boxed{<answer>}.`` -- the format the hint splitter relies on.
* ``difficulty`` (an int >= 1) raises both the number of steps and the size of the numbers, so it
  can make problems too hard to solve without hints yet learnable with them.

What ``difficulty = d`` changes, per family (the :data:`FAMILIES` registry; add a function there
to add a family):

* ``arithmetic`` -- ``d + 1`` operations, one step each. Operands of ``+``/``-`` in 1..10d,
  factors and exact divisors in 2..min(9, d + 3), every intermediate value within +-100d.
* ``linear`` -- d = 1 is ``ax + b = c`` (2 steps); d = 2 puts x on both sides (3 steps); each
  d >= 3 adds a bracket ``k(x + m)`` (d - 2 of them, at most 4), each expanded in its own step,
  then one "combine like terms" step: 5, 6, 7, 8 steps for d = 3..6. Root within +-(2d + 3),
  coefficients 2..min(9, d + 3), constants within +-(5d + 5).
* ``word`` -- a starting count 2..5d + 5, then ``d + 1`` changes, one step each: gains and losses
  of 1..3d + 2 and, from d = 3, "buys k boxes of m" (k <= min(5, d + 1), m <= 9).

All sizes are capped (operands <= 99, roots <= 20, constants <= 50, values <= 999), so a large
difficulty makes longer problems rather than huge numbers. Difficulty is at most
:data:`MAX_DIFFICULTY`.

Example:
    >>> from seele_env.procedural import generate_problems
    >>> problem = generate_problems(1, seed=0, families=("linear",), difficulty=1)[0]
    >>> problem.question
    'Solve for x: 3x + 4 = 19.'
    >>> print(problem.solution)
    Step 1: Subtract 4 from both sides: 3x = 15.
    Step 2: Divide both sides by 3: x = 5. The answer is \\boxed{5}.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seele_env.errors import DatasetError
from seele_env.problems import Problem

MAX_DIFFICULTY = 10
"""The largest accepted difficulty; beyond it questions get long without teaching anything new."""

DEFAULT_FAMILIES: tuple[str, ...] = ("arithmetic", "linear", "word")
"""The families :func:`generate_problems` mixes when none are named."""

# Rejection sampling keeps the generated forms regular (no zero constants, a divisor >= 2); a
# draw is accepted far more often than 1 in 10, so this bound only guards against a broken family.
_MAX_TRIES = 1000


@dataclass(frozen=True)
class Draft:
    """What a family function returns: a problem before it gets an id and numbered steps.

    Attributes:
        question: The problem statement.
        steps: Step bodies without the ``"Step k: "`` prefix. The last one states the result;
            :func:`generate_problem` appends ``The answer is \\boxed{...}.`` to it.
        answer: The final answer.
        record: A JSON-friendly structured form of the problem (operands, equation terms,
            story events) from which the answer can be recomputed independently; it is merged
            into :attr:`Problem.metadata`.
    """

    question: str
    steps: tuple[str, ...]
    answer: int
    record: dict[str, Any] = field(default_factory=dict)


FamilyFn = Callable[[np.random.Generator, int], Draft]
"""A family: ``(rng, difficulty) -> Draft``, drawing every random choice from ``rng``."""


def _randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A uniform int in ``[lo, hi]`` (both ends included), as a plain Python int."""
    return int(rng.integers(lo, hi + 1))


def _nonzero(rng: np.random.Generator, bound: int) -> int:
    """A uniform int in ``[-bound, bound]`` without 0."""
    value = _randint(rng, 1, bound)
    return value if rng.random() < 0.5 else -value


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """One element of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


# ----------------------------------------------------------------------------------- arithmetic

_APPLY: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a // b,  # only ever drawn with an exact divisor
}


def arithmetic(rng: np.random.Generator, difficulty: int) -> Draft:
    """A left-nested chain of ``difficulty + 1`` integer operations, one step per operation.

    Example:
        >>> draft = arithmetic(np.random.default_rng(3), 2)
        >>> draft.question
        'Compute ((17 + 4) + 4) / 5.'
        >>> draft.steps
        ('17 + 4 = 21.', '21 + 4 = 25.', '25 / 5 = 5.')
        >>> draft.record
        {'start': 17, 'operations': [['+', 4], ['+', 4], ['/', 5]]}
    """
    max_operand = min(99, 10 * difficulty)
    max_factor = min(9, difficulty + 3)
    limit = min(999, 100 * difficulty)
    value = start = _randint(rng, 1, max_operand)
    expression, steps, operations = str(start), [], []
    for i in range(difficulty + 1):
        # Only operations that keep the value an integer within +-limit are offered.
        options = [op for op, room in (("+", limit - value), ("-", limit + value)) if room >= 1]
        if abs(value) >= 2 and 2 * abs(value) <= limit:
            options.append("*")
        divisors = [b for b in range(2, max_factor + 1) if value != 0 and value % b == 0]
        if divisors:
            options.append("/")
        op = _pick(rng, options)
        if op == "+":
            operand = _randint(rng, 1, min(max_operand, limit - value))
        elif op == "-":
            operand = _randint(rng, 1, min(max_operand, limit + value))
        elif op == "*":
            operand = _randint(rng, 2, min(max_factor, limit // abs(value)))
        else:
            operand = _pick(rng, divisors)
        result = _APPLY[op](value, operand)
        # Always bracket the left side, even where precedence would not need it: one regular form.
        left = expression if i == 0 else f"({expression})"
        expression = f"{left} {op} {operand}"
        steps.append(f"{value} {op} {operand} = {result}.")
        operations.append([op, operand])
        value = result
    record = {"start": start, "operations": operations}
    return Draft(f"Compute {expression}.", tuple(steps), value, record)


# --------------------------------------------------------------------------------------- linear

# Terms are JSON-friendly lists: ["x", k] is kx, ["c", k] the constant k, ["b", k, m] is k(x + m).
Term = list[Any]


def _term_value(term: Term, x: int) -> int:
    if term[0] == "x":
        return term[1] * x
    if term[0] == "c":
        return term[1]
    return term[1] * (x + term[2])


def _term_text(term: Term) -> tuple[bool, str]:
    """(is negative, text without sign) of one term."""
    if term[0] == "b":
        sign = "+" if term[2] > 0 else "-"
        return False, f"{term[1]}(x {sign} {abs(term[2])})"
    magnitude = abs(term[1])
    if term[0] == "x":
        return term[1] < 0, "x" if magnitude == 1 else f"{magnitude}x"
    return term[1] < 0, str(magnitude)


def _side_text(terms: Sequence[Term]) -> str:
    parts = []
    for i, term in enumerate(terms):
        negative, text = _term_text(term)
        if i == 0:
            parts.append(f"-{text}" if negative else text)
        else:
            parts.append(f" - {text}" if negative else f" + {text}")
    return "".join(parts) or "0"


def _equation(left: Sequence[Term], right: Sequence[Term]) -> str:
    return f"{_side_text(left)} = {_side_text(right)}"


def _totals(terms: Sequence[Term]) -> tuple[int, int]:
    """(x coefficient, constant) of a side without brackets."""
    return (
        sum(t[1] for t in terms if t[0] == "x"),
        sum(t[1] for t in terms if t[0] == "c"),
    )


def _draw_equation(rng: np.random.Generator, difficulty: int) -> tuple[int, list[Term], list[Term]]:
    """A root and both sides; the right-hand constant is solved for so that the root fits."""
    # Past four brackets a line gets too long for a small model's context: grow numbers instead.
    n_brackets = min(4, max(0, difficulty - 2))
    coef_max, shift_max = min(9, difficulty + 3), min(9, difficulty + 2)
    const_max, root_max = min(50, 5 * difficulty + 5), min(20, 2 * difficulty + 3)

    def side(n: int, min_coef: int) -> list[Term]:
        brackets = [["b", _randint(rng, 2, coef_max), _nonzero(rng, shift_max)] for _ in range(n)]
        return brackets or [["x", _randint(rng, min_coef, coef_max)]]

    x = _nonzero(rng, root_max)
    left = [*side((n_brackets + 1) // 2, 2), ["c", _nonzero(rng, const_max)]]
    right = [] if difficulty == 1 else side(n_brackets // 2, 1)
    right_const = sum(_term_value(t, x) for t in left) - sum(_term_value(t, x) for t in right)
    return x, left, [*right, ["c", right_const]]


def _expand(term: Term) -> list[Term]:
    return [["x", term[1]], ["c", term[1] * term[2]]] if term[0] == "b" else [term]


def linear(rng: np.random.Generator, difficulty: int) -> Draft:
    """A one-variable linear equation with an integer root, solved one move per step.

    Steps, each present when needed: expand each bracket (left to right), combine like terms,
    move the x term off the right side, move the constant off the left side, divide.

    Example:
        >>> draft = linear(np.random.default_rng(0), 3)
        >>> draft.question
        'Solve for x: 6(x - 4) + 15 = 3x - 36.'
        >>> draft.steps[:2]
        ('Expand 6(x - 4): 6x - 24 + 15 = 3x - 36.', 'Combine like terms: 6x - 9 = 3x - 36.')
    """
    for _ in range(_MAX_TRIES):
        x, left, right = _draw_equation(rng, difficulty)
        flat_left = [piece for t in left for piece in _expand(t)]
        flat_right = [piece for t in right for piece in _expand(t)]
        (left_x, left_c), (right_x, right_c) = _totals(flat_left), _totals(flat_right)
        # Zero constants or a divisor below 2 would make steps vanish: keep one regular form.
        if left_x - right_x >= 2 and left_c != 0 and right_c != 0 and abs(right[-1][1]) <= 999:
            break
    else:  # pragma: no cover - would mean a broken sampler, not bad input
        raise RuntimeError(f"no regular linear equation found for difficulty {difficulty}")

    question = f"Solve for x: {_equation(left, right)}."
    steps: list[str] = []
    current_left, current_right = list(left), list(right)
    for side in (current_left, current_right):
        while brackets := [i for i, t in enumerate(side) if t[0] == "b"]:
            term = side[brackets[0]]
            side[brackets[0] : brackets[0] + 1] = _expand(term)
            steps.append(f"Expand {_term_text(term)[1]}: {_equation(current_left, current_right)}.")
    if len(current_left) > 2 or len(current_right) > 2:
        current_left = [["x", left_x], ["c", left_c]]
        current_right = [t for t in (["x", right_x], ["c", right_c]) if t[1] != 0]
        steps.append(f"Combine like terms: {_equation(current_left, current_right)}.")
    net = left_x - right_x
    if right_x != 0:
        x_text = _term_text(["x", right_x])[1]
        verb = f"Subtract {x_text} from" if right_x > 0 else f"Add {x_text} to"
        steps.append(
            f"{verb} both sides: {_equation([['x', net], ['c', left_c]], [['c', right_c]])}."
        )
    verb = f"Subtract {left_c} from" if left_c > 0 else f"Add {-left_c} to"
    steps.append(f"{verb} both sides: {_equation([['x', net]], [['c', right_c - left_c]])}.")
    steps.append(f"Divide both sides by {net}: x = {x}.")
    return Draft(question, tuple(steps), x, {"lhs": left, "rhs": right})


# ----------------------------------------------------------------------------------------- word

_PEOPLE = (("Ann", "She"), ("Ben", "He"), ("Mia", "She"), ("Tom", "He"), ("Eva", "She"))
_ITEMS = ("apples", "coins", "books", "pens", "cards", "stickers", "marbles", "shells")
_GAIN_VERBS = ("buys", "finds", "gets")
_LOSS_VERBS = ("gives away", "loses", "sells")


def word(rng: np.random.Generator, difficulty: int) -> Draft:
    """A short story: a starting count, then ``difficulty + 1`` changes, one step per change.

    Counts stay at 2 or more, so a story never needs "1 apple" or a negative count.

    Example:
        >>> draft = word(np.random.default_rng(0), 1)
        >>> draft.question
        'Eva has 6 stickers. She buys 2 more. She buys 1 more. How many stickers does Eva have now?'
        >>> draft.steps
        ('She buys 2 more, so 6 + 2 = 8 stickers.', 'She buys 1 more, so 8 + 1 = 9 stickers.')
    """
    name, pronoun = _pick(rng, _PEOPLE)
    item = _pick(rng, _ITEMS)
    count = start = _randint(rng, 2, min(50, 5 * difficulty + 5))
    change_max, limit = min(30, 3 * difficulty + 2), 999
    events, steps, changes = [], [], []
    for _ in range(difficulty + 1):
        kinds = ["gain"] + (["loss"] if count >= 3 else []) + (["group"] if difficulty >= 3 else [])
        kind = _pick(rng, kinds)
        if kind == "gain":
            amount = _randint(rng, 1, min(change_max, limit - count))
            event, new = f"{_pick(rng, _GAIN_VERBS)} {amount} more", count + amount
            work = f"{count} + {amount} = {new}"
            changes.append(["gain", amount])
        elif kind == "loss":
            amount = _randint(rng, 1, min(change_max, count - 2))
            event, new = f"{_pick(rng, _LOSS_VERBS)} {amount}", count - amount
            work = f"{count} - {amount} = {new}"
            changes.append(["loss", amount])
        else:
            boxes, size = _randint(rng, 2, min(5, difficulty + 1)), _randint(rng, 2, 9)
            new = count + boxes * size
            event = f"buys {boxes} boxes of {size}"
            work = f"{boxes} * {size} = {boxes * size} and {count} + {boxes * size} = {new}"
            changes.append(["group", boxes, size])
        events.append(f"{pronoun} {event}.")
        steps.append(f"{pronoun} {event}, so {work} {item}.")
        count = new
    question = (
        f"{name} has {start} {item}. {' '.join(events)} How many {item} does {name} have now?"
    )
    record = {"start": start, "changes": changes, "name": name, "item": item}
    return Draft(question, tuple(steps), count, record)


# -------------------------------------------------------------------------------------- running


def running(rng: np.random.Generator, difficulty: int) -> Draft:
    """A running total: a start, then ``difficulty + 1`` digits added or subtracted, one per step.

    Every step applies the same skill (copy the next operation from the question, add or
    subtract one digit), so accuracy falls roughly geometrically with the number of steps left
    to do and a hint of k steps removes k of them: the family where hints grade difficulty
    smoothly. Values stay within 0..99, so every number is one or two digits.

    Example:
        >>> draft = running(np.random.default_rng(0), 2)
        >>> draft.question
        'Compute 78 - 5 + 3 + 1.'
        >>> draft.steps
        ('78 - 5 = 73.', '73 + 3 = 76.', '76 + 1 = 77.')
        >>> draft.record
        {'start': 78, 'operations': [['-', 5], ['+', 3], ['+', 1]]}
    """
    value = start = _randint(rng, 10, 90)
    steps, operations = [], []
    for _ in range(difficulty + 1):
        options = [op for op, room in (("+", 99 - value), ("-", value)) if room >= 1]
        op = _pick(rng, options)
        operand = _randint(rng, 1, min(9, 99 - value if op == "+" else value))
        result = _APPLY[op](value, operand)
        steps.append(f"{value} {op} {operand} = {result}.")
        operations.append([op, operand])
        value = result
    expression = " ".join([str(start), *(f"{op} {operand}" for op, operand in operations)])
    record = {"start": start, "operations": operations}
    return Draft(f"Compute {expression}.", tuple(steps), value, record)


FAMILIES: dict[str, FamilyFn] = {
    "arithmetic": arithmetic,
    "linear": linear,
    "word": word,
    "running": running,
}
"""The registry of families, by name. Register a new one by adding a :data:`FamilyFn`."""

CHAIN_FAMILIES: tuple[str, ...] = ("running", "arithmetic")
"""Families whose problems are chains of ``Step k: a op b = c.`` lines that :func:`check_steps`
grades step by step."""


# ------------------------------------------------------------------------------- step checking

_STEP_LINE = re.compile(r"Step (\d{1,3}): (-?\d{1,4}) ([-+*/]) (-?\d{1,4}) = (-?\d{1,5})\.")
_MAX_CHECKED_CHARS = 10_000  # model output is untrusted: parse a bounded prefix only


def check_steps(problem: Problem, completion: str, *, first_step: int = 1) -> list[bool]:
    """Which steps of ``completion`` apply the right operation, for chain families.

    A chain problem (``arithmetic`` or ``running``: its metadata holds ``start`` and
    ``operations``) is solved by one ``Step k: a op b = c.`` line per operation. Step k is right
    when its line names the k-th operation of the question (``op b``), starts from the value the
    model itself reached one line earlier (``start`` for step 1) and computes ``c = a op b``. So
    one slip does not make every later step wrong: this measures the per-step skill, while the
    final reward measures the whole chain. A missing or unreadable step counts as wrong.

    Args:
        problem: A procedural chain problem.
        completion: What the model wrote. With a hint at the start of the response, pass the
            text after the hint and ``first_step`` = the first step the model had to write.
        first_step: Number of the first step to check; earlier steps (the hint) are skipped.

    Returns:
        One verdict per step from ``first_step`` to the last (empty if the hint held them all).

    Raises:
        ValueError: If ``problem`` is not a chain problem.

    Example:
        >>> problem = generate_problems(1, seed=0, families=("running",), difficulty=1)[0]
        >>> problem.question
        'Compute 78 - 5 + 3.'
        >>> check_steps(problem, "Step 1: 78 - 5 = 73.\\nStep 2: 73 + 3 = 75.")
        [True, False]
        >>> check_steps(problem, "Step 1: 78 - 5 = 74.\\nStep 2: 74 + 3 = 77.")
        [False, True]
    """
    metadata = problem.metadata or {}
    if "start" not in metadata or "operations" not in metadata:
        raise ValueError(
            f"problem {problem.id!r} is not a chain problem (no start and operations in its "
            "metadata); check_steps reads the families 'arithmetic' and 'running'."
        )
    operations = metadata["operations"]
    lines: dict[int, tuple[int, str, int, int]] = {}
    for match in _STEP_LINE.finditer(completion[:_MAX_CHECKED_CHARS]):
        k, a, op, b, c = match.groups()
        lines.setdefault(int(k), (int(a), op, int(b), int(c)))
    # The value each step should start from: the reference's (the start, then each step's
    # result), replaced by the model's own result after every line it wrote.
    reference = [int(metadata["start"])]
    for op, operand in operations:
        reference.append(_APPLY[op](reference[-1], int(operand)))
    verdicts = []
    previous = reference[max(1, first_step) - 1]
    for k in range(max(1, first_step), len(operations) + 1):
        op, operand = operations[k - 1]
        line = lines.get(k)
        verdicts.append(
            line is not None
            and line[:3] == (previous, op, int(operand))
            and line[3] == _APPLY[op](line[0], line[2])
        )
        previous = line[3] if line is not None else reference[k]
    return verdicts


# ----------------------------------------------------------------------------------- public API


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_family(family: Any) -> FamilyFn:
    if not isinstance(family, str) or family not in FAMILIES:
        close = difflib.get_close_matches(str(family), list(FAMILIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(
            f"Unknown procedural family {family!r}.{hint} Known families: {sorted(FAMILIES)}."
        )
    return FAMILIES[family]


def _check_difficulty(difficulty: Any, name: str = "difficulty") -> int:
    if not _is_int(difficulty) or not 1 <= difficulty <= MAX_DIFFICULTY:
        raise DatasetError(
            f"{name} must be an int from 1 to {MAX_DIFFICULTY}, got {difficulty!r}; "
            "1 gives the shortest problems with the smallest numbers."
        )
    return int(difficulty)


def _difficulty_range(difficulty: Any) -> tuple[int, int]:
    if isinstance(difficulty, tuple):
        if len(difficulty) != 2:
            raise DatasetError(
                f"difficulty as a range must be a pair (lo, hi), got {difficulty!r}; "
                "e.g. difficulty=(1, 4)."
            )
        lo = _check_difficulty(difficulty[0], "difficulty lo")
        hi = _check_difficulty(difficulty[1], "difficulty hi")
        if lo > hi:
            raise DatasetError(
                f"difficulty range {difficulty!r} has lo > hi; pass it as ({hi}, {lo})."
            )
        return lo, hi
    value = _check_difficulty(difficulty)
    return value, value


def generate_problem(
    family: str,
    rng: np.random.Generator,
    difficulty: int,
    index: int,
    *,
    seed: int | None = None,
) -> Problem:
    """One problem of ``family`` with a numbered worked solution.

    Args:
        family: A key of :data:`FAMILIES`.
        rng: The generator every random choice is drawn from (it is advanced).
        difficulty: 1 to :data:`MAX_DIFFICULTY`; see the module docstring for what it changes.
        index: Position of the problem in its collection, used in the id.
        seed: Recorded in the metadata only (``None`` when the caller made ``rng`` another way).

    Returns:
        A :class:`Problem` with id ``procedural/<family>/d<difficulty>/<index:06d>``, source
        ``procedural/<family>``, the answer as a plain integer string, and metadata holding
        ``family``, ``difficulty``, ``n_steps``, ``seed`` plus the family's structured record.

    Raises:
        DatasetError: For an unknown family, a difficulty out of range, a negative index or an
            ``rng`` that is not a ``numpy.random.Generator``.

    Example:
        >>> p = generate_problem("arithmetic", np.random.default_rng(1), 1, 17)
        >>> p.id, p.question, p.answer
        ('procedural/arithmetic/d1/000017', 'Compute (5 - 8) / 3.', '-1')
    """
    make = _check_family(family)
    difficulty = _check_difficulty(difficulty)
    if not _is_int(index) or index < 0:
        raise DatasetError(f"index must be an int >= 0, got {index!r}.")
    if not isinstance(rng, np.random.Generator):
        raise DatasetError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "make one with numpy.random.default_rng(seed)."
        )
    draft = make(rng, difficulty)
    steps = [*draft.steps[:-1], f"{draft.steps[-1]} The answer is \\boxed{{{draft.answer}}}."]
    solution = "\n".join(f"Step {k}: {text}" for k, text in enumerate(steps, start=1))
    metadata = {"family": family, "difficulty": difficulty, "n_steps": len(steps), "seed": seed}
    return Problem(
        id=f"procedural/{family}/d{difficulty}/{int(index):06d}",
        question=draft.question,
        answer=str(draft.answer),
        solution=solution,
        source=f"procedural/{family}",
        metadata={**metadata, **draft.record},
    )


def generate_problems(
    n: int,
    *,
    seed: int = 0,
    families: Sequence[str] = DEFAULT_FAMILIES,
    difficulty: int | tuple[int, int] = 2,
) -> list[Problem]:
    """``n`` procedural problems, deterministic per seed: the environment's default dataset.

    Problem ``i`` takes family ``families[i % len(families)]`` (round-robin, so the mix is exact;
    repeat a name to weight it) and draws everything from its own generator seeded with
    ``(seed, i)``. So the same arguments give the same list, and a shorter list is a prefix of a
    longer one with the same seed, families and difficulty.

    Args:
        n: How many problems (0 gives an empty list).
        seed: An int >= 0.
        families: Names from :data:`FAMILIES`, in round-robin order.
        difficulty: An int from 1 to :data:`MAX_DIFFICULTY`, or a pair ``(lo, hi)``: then each
            problem draws its own difficulty uniformly from ``lo..hi``.

    Returns:
        The problems, ids ``procedural/<family>/d<difficulty>/<i:06d>`` (unique within the call).

    Raises:
        DatasetError: For a bad ``n``, ``seed``, family or difficulty; the message says the fix.

    Example:
        >>> problems = generate_problems(3, seed=7, difficulty=(1, 3))
        >>> [p.id for p in problems]  # doctest: +NORMALIZE_WHITESPACE
        ['procedural/arithmetic/d3/000000', 'procedural/linear/d3/000001',
         'procedural/word/d1/000002']
    """
    if not _is_int(n) or n < 0:
        raise DatasetError(f"n must be an int >= 0, got {n!r}.")
    if not _is_int(seed) or seed < 0:
        raise DatasetError(f"seed must be an int >= 0, got {seed!r}; e.g. seed=0.")
    if isinstance(families, str) or not isinstance(families, Sequence) or not families:
        raise DatasetError(
            f"families must be a non-empty sequence of family names, got {families!r}; "
            f"e.g. families=('linear',). Known families: {sorted(FAMILIES)}."
        )
    for family in families:
        _check_family(family)
    lo, hi = _difficulty_range(difficulty)
    problems = []
    for index in range(n):
        rng = np.random.default_rng([int(seed), index])
        # A fixed difficulty draws nothing, so difficulty=d and (d, d) give the same problems.
        level = lo if lo == hi else _randint(rng, lo, hi)
        family = families[index % len(families)]
        problems.append(generate_problem(family, rng, level, index, seed=int(seed)))
    return problems
