"""TRL's ``GRPOTrainer`` against a seele env: a dataset of curriculum-chosen prompts and a reward.

:class:`SEELEForTRL` turns a curriculum-wrapped env (``gym.make("seele/SEELE-v0", ...)`` or any
:class:`~seele_env.curricula.Curriculum` around a ``MathHintEnv``) into the two things
``trl.GRPOTrainer`` (1.16) takes:

* :meth:`~SEELEForTRL.dataset` -- a ``datasets.IterableDataset`` whose rows are drawn lazily:
  each row is one *round* of one problem (``prompt``, ``problem_id``, ``hint_rate``,
  ``hint_text``, ``round``), rendered by the env at the rate the curriculum chooses *when TRL
  draws the row*. TRL repeats every row ``num_generations`` times, which must equal the
  curriculum's ``group_size``: one row's completions are one SEELE round.
* :meth:`~SEELEForTRL.reward` -- a reward function with TRL's signature. It verifies every
  completion with the env itself (``env.reset`` with the row's problem and rate pinned, then
  ``env.step``), returns the env's rewards, and records each round's correctness in the
  curriculum (``record``), which closes the round so the next one can be fitted; when every
  round of a curriculum step has been scored it calls ``end_step``.

Example (``examples/trl_grpo.py`` is the runnable version)::

    import gymnasium as gym
    import seele_env  # registers the envs
    from trl import GRPOConfig, GRPOTrainer
    from seele_agents.models.tiny import build_tiny
    from seele_agents.integrations.trl import SEELEForTRL

    env = gym.make("seele/SEELE-v0", families=["arithmetic"], difficulty=1,
                   template="plain", num_rounds=2, group_size=4)
    adapter = SEELEForTRL(env)
    args = GRPOConfig(output_dir="out", num_generations=4, per_device_train_batch_size=16,
                      shuffle_dataset=False, max_steps=8, loss_type="dr_grpo",
                      scale_rewards="none", use_cpu=True, bf16=False, report_to="none")
    model, tokenizer = build_tiny(seed=0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                          reward_funcs=adapter.reward, train_dataset=adapter.dataset(args))
    trainer.train()
    adapter.finish()  # ends the curriculum step that training stopped in

**Schedule.** SEELE's rounds are sequential: round r+1's rate is fitted on round r's outcomes.
TRL samples all completions of a generation batch at once, so a problem's rounds go into
different generation batches. The adapter works in *blocks* (one curriculum step each): it
draws ``interleave * P`` distinct problems (``P`` = prompts per generation batch), splits them
into ``interleave`` cohorts of ``P``, and serves generation batch ``(r - 1) * interleave + c``
of the block as round ``r`` of cohort ``c``. A block is ``interleave * num_rounds`` generation
batches (= optimizer steps with TRL's default schedule).

**Read-ahead (measured; trl 1.16.0, transformers 5.17, accelerate 1.15, one process).** With
``num_iterations=1`` and ``steps_per_generation == gradient_accumulation_steps`` (TRL's default)
TRL draws the rows of generation batch g+1 *before* it scores batch g: accelerate's data loader
fetches one batch ahead, and a data-loader batch is a whole generation batch (observed order:
draw 1, draw 2, score 1, draw 3, score 2, ...). With ``steps_per_generation`` at least twice
``gradient_accumulation_steps``, or ``num_iterations >= 2``, it draws a batch only after scoring
the previous one. ``shuffle_dataset=True`` (TRL's default) puts a 1,000-row shuffle buffer in
front of the stream, so it is refused. With ``interleave=2`` (the default) a problem's rounds
are two generation batches apart, so each round's rate is computed after the previous round's
outcomes were recorded: the rates are the ones a sequential agent would get for the same
outcomes. Should TRL read further ahead than ``interleave - 1`` batches, drawing the row raises
:class:`~seele_env.errors.EnvUsageError` instead of serving a stale rate.

At a block boundary the read-ahead still shows: the next block's problems are drawn, and its
first cohort's rates chosen, before the current block's last round is scored and ``end_step``
runs. The problems still in flight are left out of the draw (a problem has one open visit).
For SEELE and bisection nothing changes: round 1 uses the stored rate, which that last round
cannot touch for the problems drawn. A step-counting schedule (UFT, QuestA) gives that cohort
the previous step's rate, and dynamic sampling's cooldowns miss the last round's groups. The
cohort's opened rounds are carried over ``end_step`` (which would otherwise drop them) through
the curriculum's ``state_dict`` / ``load_state_dict``.

**What of SEELE survives in TRL's loop.**

* Kept: per-problem adaptive rates from the same curriculum code and the same outcomes (round
  fits, the refit and the stored rate), ``m`` rounds of ``n`` rollouts per problem per step,
  the env's verifier and reward.
* Hints: the rows' ``prompt`` is the env's observation. With ``placement="response"`` (the env
  default) that is ``prompt + hint_text`` as plain text, and TRL continues a text prompt as it
  is, so the model continues the partial solution and the env scores ``hint_text +
  completion``, exactly as in our own loop. The hint tokens are prompt tokens to TRL: they get
  no policy gradient (as in SEELE) but also no imitation term ``-gamma * log pi(hint | x)``
  (dropped; the paper's gamma is 0.001), and TRL tokenises prompt and hint as one string, so
  the token boundary between them can differ from our learner's. ``placement="prompt"`` works
  too. TRL cannot continue an assistant turn of a *conversational* prompt (it renders the chat
  template with ``add_generation_prompt=True``), so rows are always rendered text: for chat
  models use the env's ``template="chat"`` with the tokenizer (and mind that TRL tokenises text
  prompts with ``add_special_tokens=True``: a template that already writes BOS gets two).
* Changed: the policy is updated after every generation batch, so a visit's ``m`` rounds are
  sampled from policies ``interleave`` optimizer steps apart (SEELE samples them all from one
  policy), and the curve is fitted across them. TRL's advantage groups are one row's
  ``num_generations`` completions: a per-round baseline, not SEELE's baseline pooled over the
  ``m * n`` rollouts. Use ``loss_type="dr_grpo"`` and ``scale_rewards="none"`` for Dr.GRPO's
  unnormalised advantage; TRL's ``beta`` (KL, k3) defaults to 0 where SEELE uses 0.001.
* Limits: one process (each process would hold its own curriculum and score parts of groups:
  refused when a group arrives incomplete); training only (the reward records every outcome,
  so do not use it on an eval set); the adapter's place in a block is not checkpointed -- save
  ``adapter.curriculum.state_dict()`` yourself and start a fresh adapter when resuming.
  Verification is one ``env.step`` per completion, in the trainer's process: about 3.4 ms per
  procedural completion here (0.9 s for 256), so about 7 s for a 256 x 8 batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from seele_env.curricula import Curriculum, find_curriculum
from seele_env.errors import EnvUsageError

if TYPE_CHECKING:  # trl and datasets are optional (the `trl` extra)
    from datasets import IterableDataset
    from trl import GRPOConfig

COLUMNS = ("prompt", "problem_id", "hint_rate", "hint_text", "round")
"""The dataset's columns; all but ``prompt`` reach :meth:`SEELEForTRL.reward` as keyword lists."""


@dataclass(frozen=True)
class _Drawn:
    """A round handed to TRL and not yet scored."""

    block: int
    round: int
    hint_rate: float


class _RowSource:
    """The generator function ``datasets`` asks for, reading the adapter's one stream.

    ``datasets`` pickles it to hash a config id; the stream (and the env behind it) cannot be
    pickled, nor would a copy be the adapter's stream, so it pickles without it.
    """

    def __init__(self, stream: Iterator[dict[str, Any]] | None) -> None:
        self._stream = stream

    def __call__(self) -> Iterator[dict[str, Any]]:
        if self._stream is None:
            raise EnvUsageError(
                "This copy of the adapter's dataset was pickled (e.g. into a data-loader worker); "
                "its rows must be drawn in the training process: keep dataloader_num_workers=0."
            )
        return self._stream

    def __getstate__(self) -> dict[str, Any]:
        return {"_stream": None}


class SEELEForTRL:
    """A curriculum-wrapped seele env as a TRL dataset plus reward function.

    Args:
        env: A seele env with a curriculum in its wrapper chain (e.g. from
            ``gym.make("seele/SEELE-v0", ...)``); the adapter drives the curriculum through its
            grouping API and verifies completions with the env.
        interleave: Cohorts per block (``K``): a problem's consecutive rounds are ``K``
            generation batches apart. Must exceed TRL's read-ahead in generation batches (1 with
            TRL's default schedule, hence the default 2).

    Attributes:
        env: The env.
        curriculum: The curriculum found in ``env``.
        rows_drawn: Rows (rounds) handed to TRL so far.
        outcomes_recorded: Completion outcomes recorded in the curriculum so far.
        steps_ended: Curriculum steps the adapter ended (blocks fully scored, and :meth:`finish`).

    Raises:
        EnvUsageError: If ``env`` has no curriculum, the curriculum is frozen, or ``interleave``
            is not a positive integer.
    """

    def __init__(self, env: gym.Env[str, str], *, interleave: int = 2) -> None:
        self.env = env
        self.curriculum: Curriculum = find_curriculum(env)  # names the fix when there is none
        if self.curriculum.frozen:
            raise EnvUsageError(
                f"The {self.curriculum.name!r} curriculum is frozen (evaluation mode): it would "
                "record nothing and TRL would train on fixed rates. Set curriculum.frozen = False."
            )
        if isinstance(interleave, bool) or not isinstance(interleave, int) or interleave < 1:
            raise EnvUsageError(
                f"interleave={interleave!r} must be a positive integer (2 suits TRL's default "
                "schedule, which draws one generation batch ahead of the rewards)."
            )
        self.interleave = interleave
        self.rows_drawn = 0
        self.outcomes_recorded = 0
        self.steps_ended = 0
        self._per_batch: int | None = None  # P, prompts per generation batch
        self._cohorts: list[list[str]] = []
        self._cycle = 0  # generation batches drawn in the current block
        self._block = 0  # blocks started
        self._unscored: dict[int, int] = {}  # block -> rounds (problem groups) not yet scored
        self._drawn: dict[str, _Drawn] = {}  # problem -> its round in flight

    # -- what TRL consumes ---------------------------------------------------------------------

    def dataset(self, args: GRPOConfig) -> IterableDataset:
        """The training stream for ``GRPOTrainer(train_dataset=...)``, checked against ``args``.

        Args:
            args: The trainer's config: ``num_generations`` must equal the curriculum's
                ``group_size``, ``shuffle_dataset`` must be False, one process.

        Raises:
            EnvUsageError: On a config the schedule cannot serve, naming the setting to change.
        """
        from datasets import Features, IterableDataset, Value

        n = self.curriculum.group_size
        if args.num_generations != n:
            raise EnvUsageError(
                f"GRPOConfig(num_generations={args.num_generations}) but the curriculum's "
                f"group_size={n}: one row's completions are one round of group_size rollouts. "
                f"Set num_generations={n} (or build the env with group_size="
                f"{args.num_generations})."
            )
        if args.shuffle_dataset:
            raise EnvUsageError(
                "GRPOConfig(shuffle_dataset=True) makes TRL read up to 1,000 rows ahead through "
                "a shuffle buffer, so hint rates would be chosen before the outcomes they depend "
                "on. Set shuffle_dataset=False (the curriculum already draws problems at random)."
            )
        if args.world_size != 1:
            raise EnvUsageError(
                f"The adapter runs in one process; this run has world_size={args.world_size}. "
                "Each process would hold its own curriculum and see parts of each group."
            )
        source = _RowSource(self.rows(args.generation_batch_size // args.num_generations))
        features = Features(
            prompt=Value("string"),
            problem_id=Value("string"),
            hint_rate=Value("float64"),
            hint_text=Value("string"),
            round=Value("int64"),
        )
        return IterableDataset.from_generator(source, features=features)

    def rows(self, problems_per_batch: int) -> Iterator[dict[str, Any]]:
        """The rows of :meth:`dataset` as a plain generator, one generation batch at a time.

        Each batch's rates are chosen when its first row is drawn. The arguments are checked
        at the call; the rows continue the adapter's one stream.

        Args:
            problems_per_batch: ``P``, distinct prompts per generation batch
                (TRL: ``generation_batch_size // num_generations``).

        Example:
            >>> import gymnasium as gym
            >>> import seele_env
            >>> env = gym.make("seele/SEELE-v0", families=["arithmetic"], difficulty=1,
            ...                template="plain", num_rounds=2, group_size=2, seed=0)
            >>> adapter = SEELEForTRL(env)
            >>> row = next(adapter.rows(problems_per_batch=1))
            >>> row["round"], row["hint_rate"], row["hint_text"] in row["prompt"]
            (1, 0.5, True)
            >>> answer = env.unwrapped.problems.get(row["problem_id"]).answer
            >>> columns = {key: [row[key]] * 2 for key in COLUMNS[1:]}
            >>> completions = [f"\\\\boxed{{{answer}}}", "no idea"]
            >>> adapter.reward([row["prompt"]] * 2, completions, **columns)
            [1.0, 0.0]
            >>> adapter.curriculum.round_of(row["problem_id"]), adapter.outcomes_recorded
            (2, 2)
        """
        if isinstance(problems_per_batch, bool) or not isinstance(problems_per_batch, int):
            raise EnvUsageError(f"problems_per_batch={problems_per_batch!r} must be an integer.")
        if problems_per_batch < 1:
            raise EnvUsageError(
                f"problems_per_batch={problems_per_batch} must be >= 1: a generation batch needs "
                "at least num_generations completions (per_device_train_batch_size * "
                "steps_per_generation >= num_generations)."
            )
        if self._per_batch not in (None, problems_per_batch):
            raise EnvUsageError(
                f"This adapter already serves {self._per_batch} prompts per generation batch, "
                f"not {problems_per_batch}; use one adapter per trainer config."
            )
        needed = (self.interleave + 1) * problems_per_batch
        available = len(self.env.unwrapped.problem_ids)  # type: ignore[attr-defined]
        if available < needed:
            raise EnvUsageError(
                f"The env has {available} problems; a block needs (interleave + 1) * P = "
                f"{needed} distinct ones (P = {problems_per_batch} prompts per generation batch). "
                "Use more problems (e.g. num_problems=), or a smaller batch or interleave."
            )
        self._per_batch = problems_per_batch
        return self._stream()

    def reward(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """TRL reward function: the env's reward for each completion; records the outcomes.

        Args:
            prompts: The prompts (unused: the row's problem and rate identify the episode).
            completions: Completion texts, ``group_size`` consecutive ones per row.
            **kwargs: The dataset columns (``problem_id``, ``hint_rate``, ``round``, ...), one
                value per completion, and TRL's extras (``log_metric`` and ``log_extra`` are
                used when present).

        Returns:
            One float per completion: ``env.step``'s reward (1 right, 0 wrong, plus the env's
            ``format_reward`` for a formatted answer).

        Raises:
            EnvUsageError: On rows the adapter did not hand out (or already scored), a group of
                the wrong size, or a completion that is not text.
        """
        for key in ("problem_id", "hint_rate", "round"):
            if key not in kwargs or len(kwargs[key]) != len(completions):
                raise EnvUsageError(
                    f"reward() needs the dataset column {key!r} with one value per completion; "
                    "train on adapter.dataset(args) (or adapter.rows()) so the rows carry it."
                )
        rewards, correct, groups = [], [], {}
        for i, completion in enumerate(completions):
            if not isinstance(completion, str):
                raise EnvUsageError(
                    f"Completion {i} is a {type(completion).__name__}, not text; the adapter's "
                    "rows are text prompts, so TRL returns text completions. Do not convert "
                    "the dataset to conversational format."
                )
            key = (str(kwargs["problem_id"][i]), int(kwargs["round"][i]))
            rate = float(kwargs["hint_rate"][i])
            self.env.reset(options={"problem_id": key[0], "hint_rate": rate})  # pinned: no record
            _, reward, *_, info = self.env.step(completion)
            rewards.append(float(reward))
            correct.append(float(bool(info["correct"])))
            groups.setdefault(key, (rate, []))[1].append(correct[-1])
        self._record(groups)
        self._log(kwargs, correct)
        return rewards

    def finish(self) -> None:
        """End the curriculum step training stopped in, and restart the stream at a new block.

        Rounds drawn by TRL but never scored are dropped; visits with scored rounds are finished
        with the rounds they have (``Curriculum.end_step``).
        """
        self.curriculum.end_step()
        self.steps_ended += 1
        self._drawn.clear()
        self._unscored.clear()
        self._cohorts, self._cycle = [], 0

    # -- internals -----------------------------------------------------------------------------

    def _stream(self) -> Iterator[dict[str, Any]]:
        while True:
            yield from self._draw_batch()

    def _draw_batch(self) -> list[dict[str, Any]]:
        """The rows of the next generation batch: round r of one cohort, rates chosen now."""
        assert self._per_batch is not None
        k, m = self.interleave, self.curriculum.num_rounds
        if not self._cohorts or self._cycle == k * m:
            self._start_block()
        round_index, cohort = divmod(self._cycle, k)
        ids = self._cohorts[cohort]
        for pid in ids:
            if pid in self._drawn or self.curriculum.round_of(pid) != round_index + 1:
                raise EnvUsageError(
                    f"TRL asked for round {round_index + 1} of problem {pid!r} before the "
                    "completions of its previous round were scored: it reads at least "
                    f"interleave={k} generation batches ahead of the rewards, and a round's hint "
                    "rate depends on the previous round's outcomes. Raise interleave, and keep "
                    "GRPOConfig(shuffle_dataset=False)."
                )
        rows = []
        for pid, rate in zip(ids, self.curriculum.hint_rates(ids), strict=True):
            observation, info = self.env.reset(options={"problem_id": pid, "hint_rate": rate})
            if not math.isclose(info["hint_rate"], rate, abs_tol=1e-12):
                raise RuntimeError(f"env realised rate {info['hint_rate']} for curriculum {rate}")
            self._drawn[pid] = _Drawn(self._block, round_index + 1, float(rate))
            rows.append(
                {
                    "prompt": observation,
                    "problem_id": pid,
                    "hint_rate": float(rate),
                    "hint_text": info["hint_text"],
                    "round": round_index + 1,
                }
            )
        self._cycle += 1
        self.rows_drawn += len(rows)
        return rows

    def _start_block(self) -> None:
        """Draw the block's problems, none of them still in flight, and split them in cohorts."""
        assert self._per_batch is not None
        count = self.interleave * self._per_batch
        # Problems of the previous block may still be in flight (TRL's read-ahead): a problem
        # has one open visit in the curriculum, so they must not be drawn again yet.
        sample = self.curriculum.sample_problems(count + len(self._drawn))
        ids = [pid for pid in dict.fromkeys(sample) if pid not in self._drawn][:count]
        if len(ids) < count:
            raise EnvUsageError(
                f"Only {len(ids)} distinct problems are free for a block of {count}; use more "
                "problems, or a smaller batch or interleave."
            )
        self._block += 1
        self._cohorts = [
            ids[c * self._per_batch : (c + 1) * self._per_batch] for c in range(self.interleave)
        ]
        self._cycle = 0
        self._unscored[self._block] = count * self.curriculum.num_rounds

    def _record(self, groups: dict[tuple[str, int], tuple[float, list[float]]]) -> None:
        """Check every group against the rounds handed out, then record them all."""
        n = self.curriculum.group_size
        for (pid, round_no), (rate, outcomes) in groups.items():
            drawn = self._drawn.get(pid)
            if drawn is None or drawn.round != round_no or not math.isclose(drawn.hint_rate, rate):
                raise EnvUsageError(
                    f"reward() got completions of round {round_no} of problem {pid!r} at rate "
                    f"{rate}, which this adapter did not hand out or already scored. Use "
                    "adapter.reward only with adapter.dataset(args), for training (not eval)."
                )
            if len(outcomes) != n:
                raise EnvUsageError(
                    f"reward() got {len(outcomes)} completions of round {round_no} of problem "
                    f"{pid!r}; a round is group_size={n} completions scored together. Set "
                    f"GRPOConfig(num_generations={n}) and train in one process."
                )
        ids = [pid for pid, _ in groups]
        self.curriculum.record(ids, [outcomes for _, outcomes in groups.values()])
        self.outcomes_recorded += sum(len(outcomes) for _, outcomes in groups.values())
        for pid in ids:
            block = self._drawn.pop(pid).block
            self._unscored[block] -= 1
            if self._unscored[block] == 0:
                del self._unscored[block]
                self._end_step()

    def _end_step(self) -> None:
        """``curriculum.end_step()``, keeping the rounds TRL has already drawn ahead.

        ``end_step`` drops every open visit; those of the rounds in flight (the next block's
        first cohort) had their rates fixed and shown to the model, so they are put back.
        """
        state = self.curriculum.state_dict()
        keep = {pid: state["visits"][pid] for pid in self._drawn if pid in state["visits"]}
        if any(visit["rounds"] or visit["count"] for visit in keep.values()):
            raise RuntimeError(f"rounds past round 1 in flight at a step's end: {keep}")
        self.curriculum.end_step()
        self.steps_ended += 1
        if keep:
            state = self.curriculum.state_dict()
            state["visits"].update(keep)
            self.curriculum.load_state_dict(state)

    def _log(self, columns: dict[str, Any], correct: list[float]) -> None:
        log_metric: Callable[[str, float], None] | None = columns.get("log_metric")
        if callable(log_metric):
            log_metric("curriculum/hint_rate", float(np.mean(columns["hint_rate"])))
            log_metric("curriculum/round", float(np.mean(columns["round"])))
            log_metric("curriculum/step", float(self.curriculum.step_count))
            log_metric("reward/accuracy", float(np.mean(correct)))
        log_extra: Callable[[str, list[Any]], None] | None = columns.get("log_extra")
        if callable(log_extra):
            log_extra("hint_rate", [float(x) for x in columns["hint_rate"]])
            log_extra("round", [int(x) for x in columns["round"]])
