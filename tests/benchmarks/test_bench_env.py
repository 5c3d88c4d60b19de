"""Environment throughput: reset+step with realistic completions (verification included).

Run: ``python -m pytest tests/benchmarks --benchmark-only``. Each round plays 256 episodes;
``extra_info["episodes_per_s"]`` gives the rate. The reset-only benchmark isolates the env's own
cost (problem choice, hint, template) from verification.
"""

from __future__ import annotations

import numpy as np
import pytest

from seele_env import MathHintEnv, Problem

N_EPISODES = 256
FILLER = (
    "Let me work through this carefully. First I restate what is given and what is asked. "
    "Then I compute each quantity in turn, checking every intermediate result. "
)


def _completion(problem: Problem, right: bool, rng: np.random.Generator) -> str:
    """A model-like completion: some reasoning, then a boxed answer that is right or wrong."""
    answer = problem.answer if right else f"{problem.answer}1"
    reasoning = FILLER * int(rng.integers(1, 6))
    return f"{reasoning}So the final answer is $\\boxed{{{answer}}}$."


def _episodes(env: MathHintEnv, seed: int = 0) -> list[tuple[str, float, str]]:
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(N_EPISODES):
        problem = env.problems[int(rng.integers(len(env.problems)))]
        rate = float(rng.choice([0.0, 0.25, 0.5, 0.75])) if problem.has_solution else 0.0
        episodes.append((problem.id, rate, _completion(problem, bool(rng.random() < 0.5), rng)))
    return episodes


def _play(env: MathHintEnv, episodes: list[tuple[str, float, str]]) -> float:
    total = 0.0
    for problem_id, rate, completion in episodes:
        env.reset(options={"problem_id": problem_id, "hint_rate": rate})
        total += float(env.step(completion)[1])
    return total


def _bench_play(benchmark, env: MathHintEnv) -> None:
    episodes = _episodes(env)
    _play(env, episodes[:8])  # start the verifier worker outside the timing
    reward = benchmark.pedantic(_play, args=(env, episodes), rounds=5, warmup_rounds=1)
    assert 0.3 * N_EPISODES < reward < 0.7 * N_EPISODES  # about half the answers are right
    benchmark.extra_info["episodes_per_s"] = N_EPISODES / benchmark.stats.stats.mean
    env.close()


@pytest.mark.benchmark(group="env reset+step")
def test_env_procedural(benchmark) -> None:
    _bench_play(benchmark, MathHintEnv())


@pytest.mark.benchmark(group="env reset+step")
def test_env_gsm8k(benchmark, shared_data) -> None:
    _bench_play(benchmark, MathHintEnv("gsm8k", data_path=shared_data / "gsm8k", split="test"))


@pytest.mark.benchmark(group="env reset+step")
def test_env_math500(benchmark, shared_data) -> None:
    _bench_play(benchmark, MathHintEnv("math500", data_path=shared_data / "math500", split="test"))


@pytest.mark.benchmark(group="env reset only")
def test_env_reset_only_math500(benchmark, shared_data) -> None:
    env = MathHintEnv("math500", data_path=shared_data / "math500", split="test")
    episodes = _episodes(env)

    def resets() -> int:
        return sum(env.reset(options={"problem_id": p, "hint_rate": r})[1]["hint_len"]
                   for p, r, _ in episodes)  # fmt: skip

    assert benchmark.pedantic(resets, rounds=5, warmup_rounds=1) > 0
    benchmark.extra_info["resets_per_s"] = N_EPISODES / benchmark.stats.stats.mean
    env.close()
