"""Rollouts: SEELE's rounds through the grouping API, masks, rewards, evaluation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

import seele_env  # noqa: E402, F401  (registers the envs)
from seele_agents.generation import (  # noqa: E402
    Sample,
    SamplingParams,
    TransformersGenerator,
    encode,
)
from seele_agents.models.tiny import build_tiny  # noqa: E402
from seele_agents.training.rollout import collate, collect_rollouts, evaluate  # noqa: E402
from seele_env.curricula import find_curriculum  # noqa: E402
from seele_env.env import MathHintEnv  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return build_tiny(seed=0)


@pytest.fixture
def generator(tiny):
    model, tokenizer = tiny
    return TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=6), seed=0)


class ScriptedGenerator:
    """A real Generator that answers from a table: the right answer for ids in ``solved``."""

    def __init__(self, tokenizer, answers: dict[str, str], solved: set[str]) -> None:
        self.tokenizer, self.answers, self.solved = tokenizer, answers, solved
        self.pad_id = tokenizer.pad_token_id
        self.calls: list[int] = []

    def generate(self, requests, params=None):
        self.calls.append(len(requests))
        samples = []
        for r in requests:
            question = next(q for q in self.answers if q in r.prompt)
            answer = self.answers[question] if question in self.solved else "-999"
            text = f" The answer is \\boxed{{{answer}}}."
            ids = [*encode(self.tokenizer, text), self.tokenizer.eos_token_id]
            samples.append(Sample(encode(self.tokenizer, r.prompt),
                                  encode(self.tokenizer, r.forced), ids, text, [0.0] * len(ids),
                                  "stop"))  # fmt: skip
        return samples

    def sync_weights(self):
        pass


def test_seele_rounds_masks_and_order(generator, tiny):
    _, tokenizer = tiny
    env = gym.make("seele/SEELE-v0", num_rounds=3, group_size=2, template="plain")
    seele = find_curriculum(env)
    batch = collect_rollouts(env, generator, num_problems=4)
    assert len(batch) == 4 * 3 * 2
    assert batch.round_index.tolist() == [r for r in range(3) for _ in range(8)]
    assert batch.group_index.tolist() == [g for _ in range(3) for g in range(4) for _ in range(2)]
    # The three masks partition the real tokens.
    parts = batch.prompt_mask.long() + batch.hint_mask.long() + batch.gen_mask.long()
    assert torch.equal(parts, batch.attention_mask)
    assert seele.step_count == 1  # the rollout ended the training step
    base = env.unwrapped
    for row, episode in enumerate(batch.episodes):
        _, info = base.reset(options={"problem_id": episode.problem_id,
                                      "hint_rate": episode.hint_rate})  # fmt: skip
        hint_ids = batch.input_ids[row][batch.hint_mask[row]].tolist()
        assert hint_ids == encode(tokenizer, info["hint_text"])
        gen_ids = batch.input_ids[row][batch.gen_mask[row]].tolist()
        assert gen_ids == episode.sample.completion_ids
        assert batch.hint_rates[row] == pytest.approx(info["hint_rate"])
    # Round 1 of a first visit: all but the last step.
    first = batch.episodes[0]
    n = base.n_units(first.problem_id)
    assert first.hint_rate == pytest.approx((n - 1) / n)
    for key in ("reward/mean", "curriculum/hint_rate", "curriculum/accuracy_round3",
                "time/generation_s", "time/curriculum_s"):  # fmt: skip
        assert key in batch.metrics


def test_outcomes_reach_the_curriculum(tiny):
    """Problems the scripted generator solves get shorter hints next round; others longer."""
    _, tokenizer = tiny
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=4, template="plain",
                   num_problems=20, difficulty=3)  # fmt: skip
    base = env.unwrapped
    answers = {p.question: p.answer for p in base.problems}
    ids = list(base.problem_ids)
    solved = {base.problems.get(pid).question for pid in ids[::2]}
    generator = ScriptedGenerator(tokenizer, answers, solved)
    batch = collect_rollouts(env, generator, num_problems=20)
    assert generator.calls == [80, 80]  # one generation call per round, all problems together
    for episode in batch.episodes:
        question = base.problems.get(episode.problem_id).question
        assert episode.correct == (question in solved)
        assert episode.reward == float(episode.correct)
    rates = {(e.problem_id, e.round): e.hint_rate for e in batch.episodes}
    for pid in {e.problem_id for e in batch.episodes}:
        went_down = rates[(pid, 1)] < rates[(pid, 0)]
        went_up = rates[(pid, 1)] > rates[(pid, 0)]
        if base.problems.get(pid).question in solved:
            assert went_down
        elif rates[(pid, 0)] < 1:
            assert went_up or rates[(pid, 1)] == 1
    # A problem is solved by all of its rollouts or none: no round has mixed outcomes.
    assert batch.metrics["curriculum/mixed_rounds"] == 0.0
    # The hint histogram, in solution units left to do, counted again by hand.
    left = [base.n_units(e.problem_id) - round(e.hint_rate * base.n_units(e.problem_id))
            for e in batch.episodes]  # fmt: skip
    assert [e.units_left for e in batch.episodes] == left
    shares = {k: v for k, v in batch.metrics.items() if k.startswith("curriculum/units_left_")}
    assert shares == {f"curriculum/units_left_{k}": left.count(k) / len(left) for k in set(left)}


def test_mixed_rounds_counts_rounds_that_disagree(tiny):
    """One problem solved only by its first rollout of each round: every round is mixed."""
    from seele_agents.training.rollout import _metrics

    _, tokenizer = tiny
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=2, template="plain")
    base = env.unwrapped
    answers = {p.question: p.answer for p in base.problems}
    batch = collect_rollouts(env, ScriptedGenerator(tokenizer, answers, set()), num_problems=3)
    for e in batch.episodes[::2]:  # the first rollout of each (problem, round) group of 2
        e.correct = True
    assert _metrics(batch, [0.5, 0.5], dict.fromkeys(("generation", "env", "curriculum", "sync"),
                    0.0))["curriculum/mixed_rounds"] == 1.0  # fmt: skip
    batch.episodes[0].correct = False  # problem 0, round 0: now all wrong
    metrics = _metrics(batch, [0.5, 0.5], dict.fromkeys(("generation", "env", "curriculum",
                       "sync"), 0.0))  # fmt: skip
    assert metrics["curriculum/mixed_rounds"] == pytest.approx(5 / 6)


def test_prompt_placement_has_no_hint_tokens(generator):
    env = gym.make("seele/SEELE-v0", num_rounds=1, group_size=2, placement="prompt",
                   template="plain")  # fmt: skip
    batch = collect_rollouts(env, generator, num_problems=3)
    assert not batch.hint_mask.any()
    prompt_text = generator.tokenizer.decode(batch.episodes[0].sample.prompt_ids)
    assert "The solution starts like this" in prompt_text


def test_bare_env_one_round_default_rate(generator):
    env = MathHintEnv(template="plain", default_hint_rate=0.5)
    batch = collect_rollouts(env, generator, num_problems=3, group_size=2,
                             rng=np.random.default_rng(0))  # fmt: skip
    assert len(batch) == 6 and set(batch.round_index.tolist()) == {0}
    assert all(0 < e.hint_rate <= 1 for e in batch.episodes)
    assert len({e.problem_id for e in batch.episodes}) == 3


def test_evaluate_pins_rate_and_leaves_curriculum_alone(tiny):
    _, tokenizer = tiny
    env = gym.make("seele/SEELE-v0", num_rounds=1, group_size=2, template="plain",
                   num_problems=10)  # fmt: skip
    base = env.unwrapped
    answers = {p.question: p.answer for p in base.problems}
    ids = list(base.problem_ids)
    solved = {base.problems.get(pid).question for pid in ids[:3]}
    seele = find_curriculum(env)
    before = seele.state_dict()
    result = evaluate(env, ScriptedGenerator(tokenizer, answers, solved), ids,
                      SamplingParams(temperature=0))  # fmt: skip
    assert result["correct"] == [True] * 3 + [False] * 7
    assert result["accuracy"] == pytest.approx(0.3)
    assert seele.state_dict() == before


def test_collate_rejects_nothing():
    with pytest.raises(ValueError, match="no episodes"):
        collate([], pad_id=0)


def test_requests_continue_the_hint(generator):
    """A response-side hint is forced, not part of the prompt text."""
    env = gym.make("seele/SEELE-v0", num_rounds=1, group_size=1, template="plain")
    batch = collect_rollouts(env, generator, num_problems=2)
    for row, episode in enumerate(batch.episodes):
        if episode.hint_rate > 0:
            assert batch.hint_mask[row].any()
            prompt = generator.tokenizer.decode(episode.sample.prompt_ids)
            assert prompt.endswith("Solution:\n")
