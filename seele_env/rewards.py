"""Reward functions for verl, TRL and OpenRLHF, over the :class:`~seele_env.verify.Verifier`.

Each trainer calls its reward function with its own signature; all of them end in one
:meth:`Verifier.verify_batch` (or :meth:`Verifier.verify`) call, so every trainer gets the
verifier's guarantees: math-verify runs in worker processes (one per core by default), each
check has a hard, killable timeout that works from any thread, and model text is never
``eval``-ed. A check that times out, crashes or finds no answer scores 0.

* verl: ``compute_score(data_source, solution_str, ground_truth, extra_info=None)`` returns a
  float; the batch manager's ``compute_score_batch(data_sources, solution_strs, ground_truths,
  extra_infos)`` a list of floats.
* TRL: ``math_reward(prompts, completions, **kwargs)`` returns a list of floats; the dataset's
  ``answer`` column arrives as a keyword.
* OpenRLHF: ``reward_func(queries, prompts, labels)`` returns ``{"rewards", "scores",
  "extra_logs"}`` (tensors).

The module-level functions share one lazily created :class:`MathReward` per process (5 s
timeout, one worker per core). For other settings build your own and expose its methods, e.g.
``compute_score = MathReward(timeout_s=2.0).compute_score``. See ``docs/integrations.md``.

Hints: rows exported by :mod:`seele_env.export` carry ``hint_text`` and ``placement`` in their
``extra_info`` / ``info``. With ``placement="response"`` the model continues the hint, so the
text verified is ``hint_text + completion``, as in :class:`~seele_env.env.MathHintEnv`.

Example:
    >>> with MathReward(timeout_s=5.0, num_workers=1) as reward:
    ...     reward.compute_score("gsm8k", "... so she has \\\\boxed{18} eggs.", "18")
    1.0
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from seele_env.verify import Verdict, Verifier

__all__ = [
    "MathReward",
    "compute_score",
    "compute_score_batch",
    "default_reward",
    "math_reward",
    "reward_func",
]


class MathReward:
    """Verified 0/1 math rewards with the call signatures of verl, TRL and OpenRLHF.

    One object owns one :class:`~seele_env.verify.Verifier` (its worker processes start on the
    first call) and is safe to call from many threads at once: concurrent calls use different
    workers, up to ``num_workers``.

    Args:
        verifier: A verifier to share; by default the reward builds its own from ``timeout_s``
            and ``num_workers`` (and closes it in :meth:`close`).
        timeout_s: Hard limit of one check, in seconds; a check that runs longer scores 0.
        num_workers: Worker processes; default one per core.
        format_weight: Added to the reward when the answer was given in an explicit format
            (``\\boxed{}`` or ``<answer>``), right or wrong; 0 disables it.
        answer_key: For TRL: the dataset column holding the gold final answers (TRL passes
            every column but ``prompt`` to reward functions as a keyword argument).

    Example:
        >>> reward = MathReward(num_workers=1)
        >>> reward(prompts=["2+3?", "2+3?"], completions=["\\\\boxed{5}", "6"], answer=["5", "5"])
        [1.0, 0.0]
        >>> reward.close()
    """

    def __init__(
        self,
        verifier: Verifier | None = None,
        *,
        timeout_s: float = 5.0,
        num_workers: int | None = None,
        format_weight: float = 0.0,
        answer_key: str = "answer",
    ) -> None:
        if (
            isinstance(format_weight, bool)
            or not isinstance(format_weight, (int, float))
            or not 0 <= format_weight < float("inf")
        ):
            raise ValueError(
                f"format_weight must be a finite number >= 0, got {format_weight!r}; "
                "e.g. format_weight=0.1, or 0 for no format reward."
            )
        if not isinstance(answer_key, str) or not answer_key:
            raise ValueError(f"answer_key must be a column name, got {answer_key!r}.")
        self._owns_verifier = verifier is None
        self.verifier = (
            Verifier(timeout_s=timeout_s, num_workers=num_workers) if verifier is None else verifier
        )
        self.format_weight = float(format_weight)
        self.answer_key = answer_key
        # TRL names a reward function's metrics after __name__ ("rewards/math_reward/mean").
        self.__name__ = "math_reward"

    def __repr__(self) -> str:
        return f"MathReward({self.verifier!r}, format_weight={self.format_weight})"

    def __enter__(self) -> MathReward:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the verifier's idle workers if this reward owns it (a later call restarts them)."""
        if self._owns_verifier:
            self.verifier.close()

    # -- the shared core ---------------------------------------------------------------------

    def verdicts(self, ground_truths: Sequence[object], responses: Sequence[str]) -> list[Verdict]:
        """Verify responses against gold answers in one batch over the verifier's workers.

        Args:
            ground_truths: Gold final answers (str, or int/float, which are converted).
            responses: The texts to check (completion, with a response-side hint before it).

        Raises:
            ValueError: The lengths differ, or a gold answer is missing or not a str/number.
        """
        golds = [_gold(g, i) for i, g in enumerate(ground_truths)]
        return self.verifier.verify_batch(golds, responses)

    def score(self, ground_truths: Sequence[object], responses: Sequence[str]) -> list[float]:
        """The rewards of :meth:`verdicts`: 1 if right (plus ``format_weight`` if formatted).

        Example:
            >>> with MathReward(num_workers=1) as reward:
            ...     reward.score(["1/2", "7"], ["The answer is 0.5.", "I give up."])
            [1.0, 0.0]
        """
        return [v.reward(self.format_weight) for v in self.verdicts(ground_truths, responses)]

    # -- verl ----------------------------------------------------------------------------------

    def compute_score(
        self,
        data_source: object,
        solution_str: str,
        ground_truth: object,
        extra_info: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> float:
        """verl's ``compute_score``: one decoded response against ``reward_model.ground_truth``.

        verl's reward managers call it with keywords, once per response, often from threads
        (its own SIGALRM timeout does not work there; this one does).

        Args:
            data_source: The row's ``data_source`` (not needed: every source is maths).
            solution_str: The decoded response.
            ground_truth: The gold final answer.
            extra_info: The row's ``extra_info``; with ``placement="response"`` its
                ``hint_text`` is put before the response.
            **kwargs: Whatever else verl passes (``reward_router_address``...); ignored.
        """
        _check_text("solution_str", solution_str, "verl's decoded response")
        response = _with_hint(solution_str, extra_info)
        verdict = self.verifier.verify(_gold(ground_truth, 0), response)
        return verdict.reward(self.format_weight)

    def compute_score_batch(
        self,
        data_sources: Sequence[object],
        solution_strs: Sequence[str],
        ground_truths: Sequence[object],
        extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """verl's batch reward manager (``reward_manager=batch``): a whole batch in one call.

        Args:
            data_sources: The rows' ``data_source`` values (unused).
            solution_strs: Decoded responses.
            ground_truths: Gold final answers, one per response.
            extra_infos: The rows' ``extra_info`` (for response-side hints), or ``None``.
            **kwargs: ``reward_kwargs`` from verl's config; ignored.
        """
        extra_infos = [None] * len(solution_strs) if extra_infos is None else list(extra_infos)
        _same_length(
            "solution_strs", solution_strs, ground_truths=ground_truths, extra_infos=extra_infos
        )
        for i, text in enumerate(solution_strs):
            _check_text(f"solution_strs[{i}]", text, "verl's decoded response")
        responses = [_with_hint(s, e) for s, e in zip(solution_strs, extra_infos, strict=True)]
        return self.score(ground_truths, responses)

    # -- TRL -----------------------------------------------------------------------------------

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float]:
        """TRL's reward function: ``GRPOTrainer(reward_funcs=[reward])``.

        TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with
        one entry per completion; every dataset column but ``prompt`` arrives as a keyword.

        Args:
            prompts: The prompts (text, or lists of chat messages); not needed for the reward.
            completions: Completion texts, or conversational completions (lists of messages,
                whose assistant contents are checked).
            **kwargs: Dataset columns: ``answer_key`` (default ``answer``) is required;
                ``info`` (dicts with ``hint_text`` and ``placement``) is optional.

        Raises:
            ValueError: No gold-answer column, or columns whose lengths differ.
        """
        if self.answer_key not in kwargs:
            columns = sorted(k for k in kwargs if k not in _TRL_EXTRAS)
            raise ValueError(
                f"the reward needs the gold answers in a dataset column {self.answer_key!r}; "
                f"TRL passed the columns {columns}. Add an {self.answer_key!r} column (the final "
                "answer of each row), or name yours with MathReward(answer_key=...)."
            )
        answers = kwargs[self.answer_key]
        infos = kwargs.get("info")
        infos = [None] * len(completions) if infos is None else list(infos)
        _same_length("completions", completions, **{self.answer_key: answers, "info": infos})
        texts = [_completion_text(c, i) for i, c in enumerate(completions)]
        responses = [_with_hint(t, info) for t, info in zip(texts, infos, strict=True)]
        return self.score(answers, responses)

    # -- OpenRLHF ------------------------------------------------------------------------------

    def reward_func(
        self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[object]
    ) -> dict[str, Any]:
        """OpenRLHF's ``reward_func`` (the file given to ``--remote_rm_url``).

        OpenRLHF passes ``queries`` (prompt and response decoded together), ``prompts`` and
        ``labels`` (the ``--label_key`` column) and reads ``rewards``, ``scores`` and
        ``extra_logs`` from the result. It calls the function from worker threads.

        Args:
            queries: Prompt + response texts; the response is what follows the prompt.
            prompts: The prompts.
            labels: Gold final answers, or mappings with ``answer`` (and optionally
                ``hint_text`` and ``placement`` for response-side hints).

        Returns:
            ``{"rewards": tensor [B], "scores": tensor [B], "extra_logs": {"verify_error":
            tensor [B]}}`` (torch is imported here: OpenRLHF always has it).
        """
        import torch  # only OpenRLHF's reward needs tensors; seele_env never imports torch

        _same_length("queries", queries, prompts=prompts, labels=labels)
        golds: list[object] = []
        responses: list[str] = []
        for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True)):
            _check_text(f"queries[{i}]", query, "OpenRLHF's decoded prompt + response")
            _check_text(f"prompts[{i}]", prompt, "OpenRLHF's prompt")
            response = response_after_prompt(query, prompt)
            info = label if isinstance(label, Mapping) else None
            golds.append(label.get("answer") if isinstance(label, Mapping) else label)
            responses.append(_with_hint(response, info))
        verdicts = self.verdicts(golds, responses)
        rewards = torch.tensor([v.reward(self.format_weight) for v in verdicts])  # [B]
        errors = torch.tensor([float(v.error is not None) for v in verdicts])  # [B]
        return {"rewards": rewards, "scores": rewards, "extra_logs": {"verify_error": errors}}


# -- helpers -------------------------------------------------------------------------------------

_TRL_EXTRAS = frozenset(
    {"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"}
)


def _gold(value: object, index: int) -> str:
    """A gold answer as the verifier's str; numbers from a numeric column are accepted."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(value)  # numpy scalars too: verl keeps non-tensor columns as numpy arrays
    raise ValueError(
        f"gold answer {index} is {value!r} ({type(value).__name__}); it must be the final answer "
        "as a string (e.g. '18' or '\\frac{1}{2}'). Check which column holds the answers."
    )


def _check_text(name: str, value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str ({what}), got {type(value).__name__}: {value!r:.80}")


def _same_length(name: str, reference: Sequence[Any], **others: Sequence[Any]) -> None:
    for other, values in others.items():
        if len(values) != len(reference):
            raise ValueError(
                f"{other} has {len(values)} entries but {name} has {len(reference)}; the reward "
                f"needs one {other} entry per {name} entry."
            )


def _with_hint(text: str, info: Mapping[str, Any] | None) -> str:
    """``hint_text + text`` when the row's hint started the response, else ``text``."""
    if isinstance(info, Mapping) and info.get("placement") == "response":
        hint = info.get("hint_text") or ""
        if not isinstance(hint, str):
            raise ValueError(f"info['hint_text'] must be a str, got {type(hint).__name__}.")
        return hint + text
    return text


def _completion_text(completion: object, index: int) -> str:
    """A TRL completion as text: a str, or the assistant contents of a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and all(isinstance(m, Mapping) for m in completion):
        parts = []
        for message in completion:
            if message.get("role", "assistant") != "assistant":
                continue  # tool results and the like are not the model's answer
            content = message.get("content") or ""
            if isinstance(content, Sequence) and not isinstance(content, str):
                content = "".join(
                    str(p.get("text", "")) for p in content if isinstance(p, Mapping)
                )  # multimodal content parts: keep the text ones
            parts.append(str(content))
        return "".join(parts)
    raise TypeError(
        f"completion {index} is a {type(completion).__name__}: {completion!r:.80}; TRL passes "
        "completions as strings or as lists of {'role': ..., 'content': ...} messages."
    )


def response_after_prompt(query: str, prompt: str) -> str:
    """The response part of ``query`` (= prompt + response), tolerating changed whitespace.

    OpenRLHF decodes prompt and response tokens together, which can alter whitespace inside
    the prompt; the response starts where the prompt's last non-space character is matched.

    Raises:
        ValueError: ``query`` does not start with ``prompt`` (ignoring whitespace).

    Example:
        >>> response_after_prompt("Q: 2+3?\\nA: 5", "Q: 2+3?\\n")
        'A: 5'
        >>> response_after_prompt("Q:  2+3? A: 5", "Q: 2+3?")
        ' A: 5'
    """
    if query.startswith(prompt):
        return query[len(prompt) :]
    q = 0
    for ch in prompt:
        if ch.isspace():
            continue
        while q < len(query) and query[q].isspace():
            q += 1
        if q >= len(query) or query[q] != ch:
            raise ValueError(
                f"the query does not start with its prompt (first difference near prompt text "
                f"{prompt[max(0, q - 20) : q + 20]!r}); OpenRLHF passes query = prompt + "
                "response, so check that queries and prompts are in the same order."
            )
        q += 1
    return query[q:]


# -- module-level functions: one shared reward per process --------------------------------------

_default: MathReward | None = None
_default_lock = threading.Lock()


def default_reward() -> MathReward:
    """The process's shared :class:`MathReward` (5 s timeout, one worker per core), made lazily."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = MathReward()
    return _default


def compute_score(
    data_source: object,
    solution_str: str,
    ground_truth: object,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """verl's custom reward function; see :meth:`MathReward.compute_score`.

    Example:
        >>> compute_score("math", "The answer is $\\\\frac{1}{2}$.", "0.5")
        1.0
    """
    return default_reward().compute_score(
        data_source, solution_str, ground_truth, extra_info, **kwargs
    )


def compute_score_batch(
    data_sources: Sequence[object],
    solution_strs: Sequence[str],
    ground_truths: Sequence[object],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """verl's batch reward function; see :meth:`MathReward.compute_score_batch`."""
    return default_reward().compute_score_batch(
        data_sources, solution_strs, ground_truths, extra_infos, **kwargs
    )


def math_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """TRL's reward function (``GRPOTrainer(reward_funcs=[math_reward])``); see
    :meth:`MathReward.__call__`.

    Example:
        >>> math_reward(prompts=["1+1?"], completions=[[{"role": "assistant",
        ...             "content": "\\\\boxed{2}"}]], answer=["2"])
        [1.0]
    """
    return default_reward()(prompts, completions, **kwargs)


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[object]
) -> dict[str, Any]:
    """OpenRLHF's ``reward_func`` (``--remote_rm_url file.py``); see
    :meth:`MathReward.reward_func`."""
    return default_reward().reward_func(queries, prompts, labels)
