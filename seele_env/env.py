"""``MathHintEnv``: a one-step Gymnasium environment over math problems with hints.

Observation: the prompt text (with the hint at the start of the answer, or inside the prompt).
Action: the model's completion text. Reward: 1.0 when the verified final answer is right, else
0.0 (plus an optional format bonus). Every episode is one step.

Example:
    >>> import gymnasium as gym
    >>> import seele_env  # registers the environments
    >>> env = gym.make("seele/MathHint-v0")
    >>> prompt, info = env.reset(seed=0, options={"hint_rate": 0.5})
    >>> _, reward, terminated, truncated, info = env.step("... so the answer is \\\\boxed{7}.")
    >>> terminated, sorted(info)[:3]
    (True, ['correct', 'extracted_answer', 'formatted'])
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from seele_env.errors import DatasetError, EnvUsageError, HintError
from seele_env.hints import (
    ChatTokenizer,
    Rendering,
    SolutionUnits,
    Tokenizer,
    check_hint_rate,
    hint_length,
)
from seele_env.loaders import ProblemSet, load_problems
from seele_env.problems import Problem
from seele_env.procedural import generate_problems
from seele_env.verify import Verdict, Verifier

MAX_TEXT_CHARS = 200_000
RESET_OPTIONS = ("problem_id", "hint_rate")


class UnicodeText(spaces.Text):
    """A ``Text`` space that contains any Unicode string within the length bounds.

    ``gymnasium.spaces.Text.contains`` checks every character against a small charset, which
    model output (LaTeX, Unicode, emoji) fails. Sampling still draws from the default charset.
    """

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


class MathHintEnv(gym.Env[str, str]):
    """Math problems as one-step episodes, with a hint of chosen rate and a verified reward.

    ``reset(seed=None, options={"problem_id": ..., "hint_rate": ...})`` picks a problem (the one
    named, else uniformly at random with the env's RNG) and a hint rate (the one given, else
    ``default_hint_rate``) and returns ``(observation, info)``. ``step(completion)`` verifies the
    answer and returns ``("", reward, True, False, info)``.

    ``info`` after reset: ``problem_id``, ``hint_rate`` (the realised rate ``hint_len/n_units``),
    ``requested_hint_rate``, ``hint_len``, ``n_units``, ``hint_unit``, ``hint_text``,
    ``placement``, ``prompt`` (the text before a response-side hint), ``source``. After step, also
    ``correct``, ``extracted_answer``, ``verify_error`` and ``formatted``.

    With ``placement="response"`` the model continues the hint, so the verified response is
    ``hint_text + completion``: at hint rate 1 the whole solution, with its answer, is given.

    Args:
        dataset: ``"procedural"`` (default: generated problems, no files needed), a dataset
            name known to :func:`seele_env.loaders.load_problems` (``"gsm8k"``, ``"math"``,
            ``"math500"``, ...), ``"file"``, or a Hugging Face hub id.
        data_path: Local file or folder for ``dataset`` (else the hub is used), or a loaded
            ``datasets.Dataset``, read as its file would be.
        split: Dataset split, e.g. ``"train"`` or ``"test"``; ``None`` (default) takes the
            dataset's own default (``train`` for training sets, ``test`` for evaluation sets).
        fields: Field mapping for ``"file"`` / hub datasets, e.g. ``{"question": "prompt"}``.
        limit: Use only the first ``limit`` usable problems.
        problems: Your own problems; overrides ``dataset``.
        num_problems: Procedural only: how many problems to generate.
        difficulty: Procedural only: an int >= 1, or a ``(lo, hi)`` range.
        families: Procedural only: which problem families (default: all).
        procedural_seed: Procedural only: the seed of the generated problem set (independent
            of ``reset(seed=...)``, which only drives problem sampling).
        hint_unit: ``"steps"`` (default), ``"sentences"`` or ``"tokens"`` (needs ``tokenizer``).
        placement: ``"response"`` (default: the hint starts the answer) or ``"prompt"``.
        template: ``"r1"`` (default), ``"plain"``, ``"chat"`` (needs ``tokenizer``) or a format
            string containing ``{question}``.
        tokenizer: Any object with ``encode``/``decode`` (token units) and/or
            ``apply_chat_template`` (chat template). Never imported here.
        system_prompt: System turn for ``template="chat"``.
        rendering: The five options above as one :class:`~seele_env.hints.Rendering` (shared
            by a training env, its evaluation env and ``seele eval``); give it or them.
        default_hint_rate: Hint rate when ``reset`` is not given one.
        verifier: A shared :class:`~seele_env.verify.Verifier`; by default the env owns one.
        timeout_s: Hard time limit of one verification (used when the env owns its verifier).
        format_reward: Added to the reward when the answer was given in an explicit format
            (``\\boxed{}`` or ``<answer>``), right or wrong. 0 by default.
        render_mode: ``None`` or ``"ansi"``.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self,
        dataset: str = "procedural",
        *,
        data_path: str | os.PathLike[str] | Any | None = None,
        split: str | None = None,
        fields: Mapping[str, str] | None = None,
        limit: int | None = None,
        problems: Sequence[Problem] | None = None,
        num_problems: int = 1000,
        difficulty: int | tuple[int, int] = 2,
        families: Sequence[str] | None = None,
        procedural_seed: int = 0,
        hint_unit: str | None = None,
        placement: str | None = None,
        template: str | None = None,
        tokenizer: Tokenizer | ChatTokenizer | None = None,
        system_prompt: str | None = None,
        rendering: Rendering | None = None,
        default_hint_rate: float = 0.0,
        verifier: Verifier | None = None,
        timeout_s: float = 5.0,
        format_reward: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        flat = {
            "hint_unit": hint_unit,
            "placement": placement,
            "template": template,
            "tokenizer": tokenizer,
            "system_prompt": system_prompt,
        }
        given = {key: value for key, value in flat.items() if value is not None}
        if rendering is not None and given:
            raise EnvUsageError(
                f"Both rendering= and {', '.join(f'{k}=' for k in given)} were given; put "
                f"them in the Rendering (dataclasses.replace(rendering, {next(iter(given))}=...))."
            )
        self.rendering = rendering if rendering is not None else Rendering(**given)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise EnvUsageError(f"render_mode={render_mode!r} is not None or 'ansi'.")
        if (
            isinstance(format_reward, bool)
            or not isinstance(format_reward, (int, float, np.integer, np.floating))
            or not np.isfinite(format_reward)
        ):
            raise EnvUsageError(
                f"format_reward={format_reward!r} must be a finite number, e.g. format_reward=0.1."
            )
        self.problems = self._load(
            dataset, data_path, split, fields, limit, problems,
            num_problems, difficulty, families, procedural_seed,
        )  # fmt: skip
        self.default_hint_rate = check_hint_rate(default_hint_rate)
        self.format_reward = float(format_reward)
        self.render_mode = render_mode
        self._owns_verifier = verifier is None
        self.verifier = verifier if verifier is not None else Verifier(timeout_s=timeout_s)
        self._units: dict[str, SolutionUnits] = {}
        self._problem_ids: tuple[str, ...] | None = None
        # Fail at construction, not at the first reset: unit kind, template and tokenizer.
        first = self.problems[0]
        if first.has_solution:
            self.units(first.id)
        self.rendering.render(first.question)

        self.observation_space = UnicodeText(max_length=MAX_TEXT_CHARS, min_length=0)
        self.action_space = UnicodeText(max_length=MAX_TEXT_CHARS, min_length=0)
        self._problem: Problem | None = None
        self._info: dict[str, Any] = {}
        self._last_render = ""

    @staticmethod
    def _load(
        dataset: str,
        data_path: str | os.PathLike[str] | Any | None,
        split: str | None,
        fields: Mapping[str, str] | None,
        limit: int | None,
        problems: Sequence[Problem] | None,
        num_problems: int,
        difficulty: int | tuple[int, int],
        families: Sequence[str] | None,
        procedural_seed: int,
    ) -> ProblemSet:
        if problems is not None:
            problems = problems if isinstance(problems, ProblemSet) else ProblemSet(list(problems))
        elif dataset == "procedural":
            kwargs = {} if families is None else {"families": tuple(families)}
            generated = generate_problems(
                num_problems, seed=procedural_seed, difficulty=difficulty, **kwargs
            )
            problems = ProblemSet(generated)
        else:
            problems = load_problems(
                dataset, data_path=data_path, split=split, fields=fields, limit=limit
            )
        if len(problems) == 0:
            raise EnvUsageError("The environment has no problems; give at least one.")
        too_long = [p.id for p in problems if len(p.question) > MAX_TEXT_CHARS]
        if too_long:
            raise DatasetError(
                f"{len(too_long)} problem(s) have a question longer than the observation space's "
                f"max_length={MAX_TEXT_CHARS} characters (e.g. {too_long[0]!r}); drop or shorten "
                "them (e.g. problems=[p for p in problems if len(p.question) <= 100_000])."
            )
        return problems

    # -- the rendering options, read-only (they are self.rendering's) ---------------------------

    @property
    def hint_unit(self) -> str:
        return self.rendering.hint_unit

    @property
    def placement(self) -> str:
        return self.rendering.placement

    @property
    def template(self) -> str:
        return self.rendering.template

    @property
    def tokenizer(self) -> Tokenizer | ChatTokenizer | None:
        return self.rendering.tokenizer

    @property
    def system_prompt(self) -> str | None:
        return self.rendering.system_prompt

    # -- problem access (used by curricula and agents) ------------------------------------------

    def units(self, problem_id: str) -> SolutionUnits:
        """The solution units of a problem (cached); empty for answer-only problems."""
        units = self._units.get(problem_id)
        if units is None:
            problem = self.problems.get(problem_id)
            units = self.rendering.units(problem.solution)
            self._units[problem_id] = units
        return units

    def n_units(self, problem_id: str) -> int:
        """``|y|`` of a problem's reference solution in this env's hint unit."""
        return self.units(problem_id).n_units

    @property
    def problem_ids(self) -> tuple[str, ...]:
        """The ids of the env's problems, in order (what curricula sample from)."""
        if self._problem_ids is None:
            self._problem_ids = tuple(self.problems.ids)
        return self._problem_ids

    # -- the Gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = check_reset_options(options)
        if options.get("problem_id") is not None:
            problem = self.problems.get(str(options["problem_id"]))
        else:
            problem = self.problems[int(self.np_random.integers(len(self.problems)))]
        rate = options.get("hint_rate")
        requested = self.default_hint_rate if rate is None else check_hint_rate(rate)
        if requested > 0 and not problem.has_solution:
            raise HintError(
                f"hint_rate={requested} was asked for problem {problem.id!r}, which has no "
                "reference solution (an answer-only dataset); use hint_rate=0 for it."
            )
        units = self.units(problem.id) if problem.has_solution else None
        n_units = units.n_units if units is not None else 0
        hint_len = hint_length(requested, n_units)
        hint_text = units.prefix(hint_len) if units is not None else ""
        prompt, observation = self.rendering.render(problem.question, hint_text)
        if len(observation) > MAX_TEXT_CHARS:
            raise DatasetError(
                f"The prompt of problem {problem.id!r} is {len(observation)} characters, above "
                f"the observation space's max_length={MAX_TEXT_CHARS}; drop or shorten the "
                "problem, or use a shorter template or hint_rate."
            )
        self._problem = problem
        self._info = {
            "problem_id": problem.id,
            "hint_rate": hint_len / n_units if n_units else 0.0,
            "requested_hint_rate": requested,
            "hint_len": hint_len,
            "n_units": n_units,
            "hint_unit": self.hint_unit,
            "hint_text": hint_text,
            "placement": self.placement,
            "prompt": prompt,
            "source": problem.source,
        }
        self._last_render = observation
        return observation, dict(self._info)

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        check_step(self._problem is not None, action)
        problem, info = self._problem, self._info
        self._problem = None
        response = info["hint_text"] + action if self.placement == "response" else action
        verdict = self.verifier.verify(problem.answer, response)
        reward = verdict.reward(self.format_reward)
        info = {**info, **_verdict_info(verdict)}
        self._last_render = f"{self._last_render}{action}\n[reward {reward}] {verdict}"
        return "", reward, True, False, info

    def render(self) -> str | None:  # type: ignore[override]
        """With ``render_mode="ansi"``: the last observation, completion and verdict as text."""
        return self._last_render if self.render_mode == "ansi" else None

    def close(self) -> None:
        if self._owns_verifier:
            self.verifier.close()
        super().close()


def check_step(in_play: bool, action: object) -> None:
    """A clear error for ``step()`` without a problem in play, or with a non-text action."""
    if not in_play:
        raise EnvUsageError(
            "step() was called with no problem in play; call reset() first "
            "(every episode is one step, so reset() again after each step())."
        )
    if not isinstance(action, str):
        raise EnvUsageError(
            f"The action must be the model's completion as a str, got "
            f"{type(action).__name__}: {action!r:.80}; decode token ids to text first."
        )


def check_reset_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The reset options as a new dict, or a clear error for a non-dict or an unknown key."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise EnvUsageError(f"options must be a dict, got {type(options).__name__}.")
    for key in options:
        if key not in RESET_OPTIONS:
            close = difflib.get_close_matches(str(key), RESET_OPTIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EnvUsageError(
                f"Unknown reset option {key!r}; the options are {RESET_OPTIONS}.{hint}"
            )
    return dict(options)


def _verdict_info(verdict: Verdict) -> dict[str, Any]:
    return {
        "correct": verdict.correct,
        "extracted_answer": verdict.extracted_answer,
        "verify_error": verdict.error,
        "formatted": verdict.formatted,
    }
