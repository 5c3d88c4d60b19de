"""Sample completions for people to read: a few rows of a training step's own rollouts.

:func:`sample_rows` picks ``limit`` rollouts of a
:class:`~seele_agents.training.rollout.RolloutBatch` (no extra generation) and turns each into one
flat record: the training ``step``, the ``problem_id``, the 1-based ``round``, the realised
``hint_rate``, the ``reward``, whether the answer was ``correct``, and the texts: ``prompt`` (what
the model was given, decoded from its tokens), ``hint`` (the solution prefix shown, whether it sits
in the prompt or starts the response) and ``completion`` (what the model wrote).
:class:`~seele_agents.training.tracking.MetricsLogger` writes them to ``samples.jsonl`` and the
trackers.

Rows are picked without randomness, so logging samples never moves a training RNG: the first
completion of every (problem, round), problem by problem (so a problem's rounds sit together and
show its hint shrinking or growing), then every pair's second completion, and so on.

Example:
    >>> import gymnasium as gym
    >>> import seele_env
    >>> from seele_agents.generation import SamplingParams, TransformersGenerator
    >>> from seele_agents.training.rollout import collect_rollouts
    >>> from seele_agents.models.tiny import build_tiny
    >>> model, tokenizer = build_tiny(seed=0)
    >>> env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=2, template="plain")
    >>> generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=4))
    >>> batch = collect_rollouts(env, generator, num_problems=3)
    >>> rows = sample_rows(batch, env.unwrapped, tokenizer, step=7, limit=4)
    >>> [(row["step"], row["round"]) for row in rows]
    [(7, 1), (7, 2), (7, 1), (7, 2)]
    >>> rows[0]["problem_id"] == rows[1]["problem_id"] != rows[2]["problem_id"]
    True
    >>> list(rows[0]) == list(SAMPLE_FIELDS)
    True
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from seele_agents.training.rollout import Episode, RolloutBatch

SAMPLE_FIELDS = (
    "step", "problem_id", "round", "hint_rate", "reward", "correct", "prompt", "hint",
    "completion",
)  # fmt: skip
"""The keys of a sample row, in the order tables show them."""


def pick_rows(episodes: list[Episode], limit: int) -> list[int]:
    """Indices of the ``limit`` episodes to show: the first completion of every (problem, round)
    ordered by problem then round, then every pair's second completion, and so on.

    Example:
        >>> from seele_agents.generation import Sample
        >>> blank = Sample([], [], [], "")
        >>> episodes = [Episode(f"p{g}", g, r, 0.0, 0.0, False, blank)
        ...             for r in range(2) for g in range(2) for _ in range(2)]  # rollout order
        >>> pick_rows(episodes, 5)  # p0 r0, p0 r1, p1 r0, p1 r1, then p0 r0's second
        [0, 4, 2, 6, 1]
    """
    seen: Counter[tuple[int, int]] = Counter()
    keys = []
    for row, episode in enumerate(episodes):
        nth = seen[episode.group, episode.round]
        seen[episode.group, episode.round] += 1
        keys.append(((nth, episode.group, episode.round), row))
    return [row for _, row in sorted(keys)[:limit]]


def sample_rows(
    batch: RolloutBatch, env: Any, tokenizer: Any, *, step: int, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` readable rows of ``batch`` (see :func:`pick_rows`), keys as
    :data:`SAMPLE_FIELDS`.

    Args:
        batch: The training step's rollouts.
        env: The unwrapped :class:`~seele_env.env.MathHintEnv` they were scored by (its
            ``units`` give the hint text).
        tokenizer: Decodes the prompt tokens (special tokens kept: what the model saw).
        step: The training step, written in every row.
        limit: Most rows.
    """
    rows = []
    for index in pick_rows(batch.episodes, limit):
        episode = batch.episodes[index]
        rows.append(
            {
                "step": step,
                "problem_id": episode.problem_id,
                "round": episode.round + 1,
                "hint_rate": episode.hint_rate,
                "reward": episode.reward,
                "correct": episode.correct,
                "prompt": tokenizer.decode(episode.sample.prompt_ids),
                "hint": _hint_text(env, episode),
                "completion": episode.sample.text,
            }
        )
    return rows


def _hint_text(env: Any, episode: Episode) -> str:
    """The hint the episode was given: ``hint_rate = hint_len / n_units`` gives ``hint_len`` back
    (rounded against float error), and the env's cached units give its text."""
    if episode.hint_rate <= 0:
        return ""  # also for answer-only problems, which have no units
    units = env.units(episode.problem_id)
    return units.prefix(round(episode.hint_rate * units.n_units))
