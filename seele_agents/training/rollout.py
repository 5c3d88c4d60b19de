"""Rollouts: the only code that talks to both an environment and a generator.

:func:`collect_rollouts` runs one training step's sampling. With a curriculum in the wrapper
chain (``seele_env.curricula``) it uses the curriculum's grouping API, as SEELE prescribes:

1. ``sample_problems(P)`` picks the step's problems;
2. for each of the ``num_rounds`` rounds: ``hint_rates(ids)`` gives each problem's rate for the
   round, every problem is sampled ``group_size`` times at that rate (one batched generation
   call for the whole round), every completion is scored by ``env.reset`` (rate pinned) +
   ``env.step``, and ``record(ids, outcomes)`` lets the curriculum fit and choose the next
   round's rates;
3. ``end_step()`` closes the training step.

Rounds are sequential because round r's rates depend on round r-1's outcomes; within a round all
problems are generated together. Without a curriculum the env's own hint rate is used, problems
are drawn uniformly, and there is one round.

The result is a :class:`RolloutBatch`: each sequence is ``prompt + hint + completion`` as token
ids (right-padded), with masks telling the three parts apart, so the learner can put the policy
gradient on generated tokens only and the imitation term on hint tokens.

Example:
    >>> import gymnasium as gym
    >>> import seele_env
    >>> from seele_agents.generation import SamplingParams, TransformersGenerator
    >>> from seele_agents.models.tiny import build_tiny
    >>> model, tokenizer = build_tiny(seed=0)
    >>> env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=2, template="plain")
    >>> generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=4))
    >>> batch = collect_rollouts(env, generator, num_problems=3)
    >>> batch.input_ids.shape[0], batch.round_index.tolist()
    (12, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from seele_agents.generation import GenerationRequest, Generator, Sample, SamplingParams
from seele_agents.training.distributed import World, all_gather_objects, shard
from seele_env.curricula import Curriculum
from seele_env.curricula.base import find_curriculum
from seele_env.errors import EnvUsageError


@dataclass
class Episode:
    """One scored completion.

    Attributes:
        problem_id: The problem.
        group: Index of the problem within the step (0..P-1): its advantage group.
        round: 0-based round of the problem's visit.
        hint_rate: The realised hint rate ``l/|y|`` the completion was generated with.
        reward: The env's reward.
        correct: Whether the verified answer was right (what the curriculum records).
        sample: The generated tokens and text.
        units_left: Units of the reference solution not shown in the hint (``|y| - l``).
    """

    problem_id: str
    group: int
    round: int
    hint_rate: float
    reward: float
    correct: bool
    sample: Sample
    units_left: int = 0


@dataclass
class RolloutBatch:
    """A training step's rollouts as padded tensors (``B`` sequences, ``T`` tokens).

    Attributes:
        input_ids: ``prompt + hint + completion`` token ids, right-padded. ``[B, T]``
        attention_mask: 1 on real tokens. ``[B, T]``
        prompt_mask: True on prompt tokens. ``[B, T]``
        hint_mask: True on forced hint tokens (response-side hints). ``[B, T]``
        gen_mask: True on generated tokens. ``[B, T]``
        rewards: ``[B]`` float.
        group_index: Which problem (0..P-1) each sequence belongs to. ``[B]`` long.
        round_index: 0-based round of each sequence. ``[B]`` long.
        hint_rates: Realised hint rate of each sequence. ``[B]`` float.
        episodes: The episodes the rows were built from, in row order.
        metrics: Rollout metrics (``reward/*``, ``rollout/*``, ``curriculum/*``).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_mask: torch.Tensor
    hint_mask: torch.Tensor
    gen_mask: torch.Tensor
    rewards: torch.Tensor
    group_index: torch.Tensor
    round_index: torch.Tensor
    hint_rates: torch.Tensor
    episodes: list[Episode] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def collate(episodes: Sequence[Episode], pad_id: int) -> RolloutBatch:
    """Pad episodes into a :class:`RolloutBatch` (no metrics)."""
    if not episodes:
        raise ValueError("collate() got no episodes.")
    width = max(
        len(e.sample.prompt_ids) + len(e.sample.forced_ids) + len(e.sample.completion_ids)
        for e in episodes
    )
    size = (len(episodes), width)
    input_ids = torch.full(size, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(size, dtype=torch.long)
    part = torch.zeros(size, dtype=torch.long)  # 0 pad, 1 prompt, 2 hint, 3 generated
    for row, e in enumerate(episodes):
        s = e.sample
        ids = s.prompt_ids + s.forced_ids + s.completion_ids
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
        a, b = len(s.prompt_ids), len(s.prompt_ids) + len(s.forced_ids)
        part[row, :a], part[row, a:b], part[row, b : len(ids)] = 1, 2, 3
    return RolloutBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        prompt_mask=part == 1,
        hint_mask=part == 2,
        gen_mask=part == 3,
        rewards=torch.tensor([e.reward for e in episodes], dtype=torch.float),
        group_index=torch.tensor([e.group for e in episodes], dtype=torch.long),
        round_index=torch.tensor([e.round for e in episodes], dtype=torch.long),
        hint_rates=torch.tensor([e.hint_rate for e in episodes], dtype=torch.float),
        episodes=list(episodes),
    )


def curriculum_of(env: gym.Env[Any, Any]) -> Curriculum | None:
    """The curriculum wrapper around ``env``, or ``None`` for a bare env."""
    try:
        return find_curriculum(env)
    except EnvUsageError:
        return None


def collect_rollouts(
    env: gym.Env[str, str],
    generator: Generator,
    *,
    num_problems: int,
    num_rounds: int | None = None,
    group_size: int | None = None,
    params: SamplingParams | None = None,
    pad_id: int | None = None,
    rng: np.random.Generator | None = None,
    world: World | None = None,
) -> RolloutBatch:
    """Sample and score one training step's rollouts.

    With several processes (``world``), every rank's curriculum picks the same ``P`` problems,
    this rank samples and scores its contiguous ``P / W`` of them, and each round's outcomes of
    all ranks are gathered so that every rank's curriculum records all ``P`` problems
    (:mod:`seele_agents.training.distributed`). The batch holds this rank's rows only.

    Args:
        env: A seele env (``problem_ids`` and ``reset(options={"problem_id", "hint_rate"})``
            on its unwrapped env), optionally wrapped in a curriculum.
        generator: The generation backend.
        num_problems: Problems per step (``P``).
        num_rounds: Rounds per problem (``m``); default: the curriculum's, else 1.
        group_size: Rollouts per problem per round (``n``); default: the curriculum's, else 8.
        params: Sampling parameters (default: the generator's).
        pad_id: Padding id for the batch (default: the generator tokenizer's pad id).
        rng: Draws problems when there is no curriculum (with several processes: seeded the
            same on every rank, so they draw the same problems).
        world: The processes sharing the step (default: this one alone).

    Returns:
        The batch, ``B = P * m * n / W`` rows ordered by round, then problem, then sample.
    """
    world = world or World()
    curriculum = curriculum_of(env)
    m = num_rounds or (curriculum.num_rounds if curriculum else 1)
    n = group_size or (curriculum.group_size if curriculum else 8)
    if curriculum is not None:
        ids = curriculum.sample_problems(num_problems)
    else:
        if rng is None and world.size > 1:
            raise ValueError(
                "collect_rollouts() over several processes without a curriculum needs rng, "
                "seeded the same on every rank, so that the ranks draw the same problems."
            )
        all_ids = env.unwrapped.problem_ids  # type: ignore[attr-defined]
        rng = rng or np.random.default_rng()
        ids = [all_ids[i] for i in rng.choice(len(all_ids), num_problems, replace=False)]
    episodes: list[Episode] = []
    seconds = {"generation": 0.0, "env": 0.0, "curriculum": 0.0, "sync": 0.0}
    round_accuracy = []
    for r in range(m):
        start = time.perf_counter()
        rates = curriculum.hint_rates(ids) if curriculum is not None else [None] * len(ids)
        seconds["curriculum"] += time.perf_counter() - start
        options = shard([_options(pid, rate) for pid, rate in zip(ids, rates, strict=True)], world)
        start = time.perf_counter()
        requests = [_request(*env.reset(options=o)) for o in options]
        seconds["env"] += time.perf_counter() - start
        start = time.perf_counter()
        samples = generator.generate([q for q in requests for _ in range(n)], params)
        seconds["generation"] += time.perf_counter() - start
        start = time.perf_counter()
        outcomes = []
        for g, o in enumerate(options):
            group = []
            for sample in samples[g * n : (g + 1) * n]:
                _, info = env.reset(options=o)
                _, reward, *_, info = env.step(sample.text)
                rate = float(info["hint_rate"])
                left = int(info["n_units"]) - int(info["hint_len"])
                episodes.append(Episode(o["problem_id"], g, r, rate, float(reward),
                                        bool(info["correct"]), sample, left))  # fmt: skip
                group.append(float(info["correct"]))
            outcomes.append(group)
        seconds["env"] += time.perf_counter() - start
        start = time.perf_counter()
        outcomes = [o for block in all_gather_objects(outcomes, world) for o in block]
        seconds["sync"] += time.perf_counter() - start
        start = time.perf_counter()
        if curriculum is not None:
            curriculum.record(ids, outcomes)
        seconds["curriculum"] += time.perf_counter() - start
        round_accuracy.append(float(np.mean(outcomes)))
    start = time.perf_counter()
    if curriculum is not None:
        curriculum.end_step()
    seconds["curriculum"] += time.perf_counter() - start
    if pad_id is None:
        pad_id = getattr(generator, "pad_id", None)
        if pad_id is None:
            raise ValueError("collect_rollouts() needs pad_id for a generator without one.")
    batch = collate(episodes, pad_id)
    batch.metrics = _metrics(batch, round_accuracy, seconds)
    return batch


def evaluate(
    env: gym.Env[str, str],
    generator: Generator,
    problem_ids: Sequence[str],
    params: SamplingParams,
    *,
    hint_rate: float = 0.0,
) -> dict[str, Any]:
    """Accuracy of one completion per problem at a pinned hint rate (0: no hint).

    Pinned rates are not recorded by a curriculum, so evaluating never moves one.

    Returns:
        ``accuracy`` (fraction correct), ``correct`` (per problem, in order),
        ``completions`` (the generated texts, after any hint, in order) and
        ``completion_tokens_mean``.
    """
    options = [{"problem_id": pid, "hint_rate": hint_rate} for pid in problem_ids]
    requests = [_request(*env.reset(options=o)) for o in options]
    samples = generator.generate(requests, params)
    correct = []
    for o, sample in zip(options, samples, strict=True):
        env.reset(options=o)
        correct.append(bool(env.step(sample.text)[-1]["correct"]))
    return {
        "accuracy": float(np.mean(correct)) if correct else float("nan"),
        "correct": correct,
        "completions": [sample.text for sample in samples],
        "completion_tokens_mean": float(np.mean([len(s.completion_ids) for s in samples])),
    }


def _options(problem_id: str, rate: float | None) -> dict[str, Any]:
    options: dict[str, Any] = {"problem_id": problem_id}
    if rate is not None:
        options["hint_rate"] = float(rate)
    return options


def _request(observation: str, info: dict[str, Any]) -> GenerationRequest:
    """What to generate from a reset: continue the hint when it starts the response."""
    if info.get("placement") == "response" and info.get("hint_text"):
        return GenerationRequest(info["prompt"], info["hint_text"])
    return GenerationRequest(observation)


def _metrics(
    batch: RolloutBatch, round_accuracy: list[float], seconds: dict[str, float]
) -> dict[str, float]:
    lengths = batch.gen_mask.sum(-1).float()  # [B]
    truncated = [e.sample.finish_reason == "length" for e in batch.episodes]
    metrics = {
        "reward/mean": float(batch.rewards.mean()),
        "reward/accuracy": float(np.mean([e.correct for e in batch.episodes])),
        "curriculum/hint_rate": float(batch.hint_rates.mean()),
        "rollout/episodes": float(len(batch)),
        "rollout/completion_tokens_mean": float(lengths.mean()),
        "rollout/hint_tokens_mean": float(batch.hint_mask.sum(-1).float().mean()),
        "rollout/truncated_fraction": float(np.mean(truncated)),
        "rollout/generated_tokens": float(lengths.sum()),
        "time/generation_s": seconds["generation"],
        "time/env_s": seconds["env"],
        "time/curriculum_s": seconds["curriculum"],
        "time/sync_s": seconds["sync"],
    }
    for r, accuracy in enumerate(round_accuracy):
        metrics[f"curriculum/accuracy_round{r + 1}"] = accuracy
    rounds: dict[tuple[int, int], set[bool]] = {}
    for e in batch.episodes:
        rounds.setdefault((e.group, e.round), set()).add(e.correct)
    if rounds:  # rounds whose n rollouts (one problem, one hint rate) disagree
        metrics["curriculum/mixed_rounds"] = float(np.mean([len(o) > 1 for o in rounds.values()]))
    left = np.array([e.units_left for e in batch.episodes])
    for k in np.unique(left):  # the hint histogram, in solution units left to do
        metrics[f"curriculum/units_left_{k}"] = float(np.mean(left == k))
    return metrics
