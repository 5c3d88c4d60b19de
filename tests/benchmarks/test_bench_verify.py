"""Verifier throughput against plain math-verify calls on the same inputs.

Run with ``python -m pytest tests/benchmarks/test_bench_verify.py --benchmark-only``.

Inputs are realistic: gold answers from MATH-500 and GSM8K test, and completions shaped like a
model's (a few sentences of reasoning ending in ``\\boxed{...}``), half correct (the gold, in
an equivalent form now and then) and half wrong. Two input sets, because the worker caches
parsed gold answers:

* ``grouped``: 64 problems x 8 completions, as in a GRPO step (the cache hits 7 times in 8);
* ``distinct``: 512 different problems (the cache never hits).

Goals: the safe single call costs at most 1.5x plain math-verify; the 2-worker batch is at least
1.6x faster than the safe calls one by one.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from seele_env.verify import Verifier

math_verify = pytest.importorskip("math_verify")
from math_verify import parse  # noqa: E402
from math_verify import verify as mv_verify  # noqa: E402
from math_verify.parser import parse_expr_cached, parse_latex_cached  # noqa: E402

DATA = Path(
    os.environ.get("SEELE_SHARED_DATA", Path(__file__).parents[2] / ".." / "shared" / "data")
)
N_ITEMS = 512
N_WARMUP = 128
ROUNDS = 3

REASONING = [
    "Let me set up the problem carefully.",
    "We first collect the known quantities and write the relation between them.",
    "Substituting the values, the expression simplifies considerably.",
    "Checking the arithmetic once more, the computation is consistent.",
    "This matches the constraints given in the statement.",
]


def _load_golds() -> list[str]:
    if not DATA.is_dir():
        pytest.skip(f"real datasets not found at {DATA} (set SEELE_SHARED_DATA)")
    golds = []
    with (DATA / "math500" / "test.jsonl").open(encoding="utf-8") as f:
        golds += [json.loads(line)["answer"] for line in f]
    with (DATA / "gsm8k" / "test.jsonl").open(encoding="utf-8") as f:
        golds += [json.loads(line)["answer"].split("####")[-1].strip() for line in f]
    return golds


def _equivalent(gold: str, rng: random.Random) -> str:
    """The gold answer, sometimes rewritten in an equivalent form, as a model might."""
    if re.fullmatch(r"-?\d+", gold) and rng.random() < 0.3:
        return rng.choice([f"{gold}.0", f"\\${gold}", f"{gold} \\text{{ units}}"])
    frac = re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", gold)
    if frac and rng.random() < 0.5:
        return rng.choice([f"\\dfrac{{{frac[1]}}}{{{frac[2]}}}", f"{frac[1]}/{frac[2]}"])
    return gold


def _wrong(gold: str, other: str, rng: random.Random) -> str:
    if re.fullmatch(r"-?\d+", gold):
        return str(int(gold) + rng.choice([-2, -1, 1, 10]))
    return other if other != gold else "0"


def _completion(answer: str, rng: random.Random) -> str:
    steps = " ".join(rng.sample(REASONING, 3))
    return f"{steps} So the final result is $\\boxed{{{answer}}}$."


def _items(kind: str, round_index: int) -> tuple[list[str], list[str]]:
    """Inputs for one timed round. Each round gets other problems (disjoint slices of a fixed
    shuffle), so no round is sped up by parse caches filled in an earlier one."""
    rng = random.Random(round_index)
    pool = _load_golds()
    random.Random(0).shuffle(pool)
    if kind == "grouped":
        problems = pool[round_index * (N_ITEMS // 8) :][: N_ITEMS // 8]
        golds = [g for g in problems for _ in range(8)]
    else:
        golds = pool[round_index * N_ITEMS :][:N_ITEMS]
    completions = []
    for i, gold in enumerate(golds):
        answer = _equivalent(gold, rng) if i % 2 == 0 else _wrong(gold, rng.choice(pool), rng)
        completions.append(_completion(answer, rng))
    return golds, completions


def _warmup_items() -> tuple[list[str], list[str]]:
    """128 items from the end of the shuffled pool, which no timed round uses: run once before
    timing so both sides start warm (math-verify loads parser and sympy code on first use)."""
    rng = random.Random(1234)
    pool = _load_golds()
    random.Random(0).shuffle(pool)
    golds = pool[-N_WARMUP:]
    completions = [_completion(_equivalent(g, rng), rng) for g in golds]
    return golds, completions


def _rounds(kind: str):
    """A pedantic ``setup``: the untimed inputs of the next round."""
    counter = iter(range(ROUNDS))
    return lambda: (_items(kind, next(counter)), {})


@pytest.fixture
def verifier():
    # A fresh verifier per benchmark, so its workers' gold caches start empty.
    with Verifier(timeout_s=5.0) as v:
        v.verify_batch(*_warmup_items())  # start and warm all workers outside the timing
        yield v


def _plain(golds: list[str], completions: list[str]) -> list[bool]:
    # Plain math-verify in the main thread with its default (SIGALRM) timeouts; the gold is
    # wrapped, since a bare gold often parses to nothing.
    return [mv_verify(parse(f"${g}$"), parse(c)) for g, c in zip(golds, completions, strict=True)]


def _accuracy(results: list[bool]) -> float:
    return sum(results) / len(results)


@pytest.mark.parametrize("kind", ["grouped", "distinct"])
@pytest.mark.benchmark(group="verify-one-by-one")
def test_plain_math_verify(benchmark, kind):
    # Start from empty caches (math-verify memoises parsed LaTeX in-process), warmed like the
    # workers are.
    parse_latex_cached.cache_clear()
    parse_expr_cached.cache_clear()
    _plain(*_warmup_items())
    results = benchmark.pedantic(_plain, setup=_rounds(kind), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["accuracy_last_round"] = _accuracy(results)
    assert 0.3 < _accuracy(results) < 0.7


@pytest.mark.parametrize("kind", ["grouped", "distinct"])
@pytest.mark.benchmark(group="verify-one-by-one")
def test_safe_verify_one_by_one(benchmark, verifier, kind):
    def run(golds: list[str], completions: list[str]) -> list[bool]:
        return [verifier.verify(g, c).correct for g, c in zip(golds, completions, strict=True)]

    results = benchmark.pedantic(run, setup=_rounds(kind), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["accuracy_last_round"] = _accuracy(results)
    assert results == _plain(*_items(kind, ROUNDS - 1))  # same verdicts as plain math-verify


@pytest.mark.parametrize("kind", ["grouped", "distinct"])
@pytest.mark.benchmark(group="verify-batch")
def test_safe_verify_batch(benchmark, verifier, kind):
    def run(golds: list[str], completions: list[str]) -> list[bool]:
        return [v.correct for v in verifier.verify_batch(golds, completions)]

    results = benchmark.pedantic(run, setup=_rounds(kind), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["accuracy_last_round"] = _accuracy(results)
    golds, completions = _items(kind, ROUNDS - 1)
    assert results == [v.correct for v in map(verifier.verify, golds, completions)]
