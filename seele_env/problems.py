"""The :class:`Problem` record shared by loaders, hints, the verifier and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One math problem with its final answer and, when the source has one, a worked solution.

    Attributes:
        id: Unique within its dataset, e.g. ``"gsm8k/train/17"`` or ``"test/algebra/1.json"``.
        question: The problem statement shown to the model.
        answer: The final answer as written by the source (LaTeX or plain), used as the gold
            answer by the verifier.
        solution: The reference solution used for hints, cleaned of source-specific noise
            (calculator notes, ``####`` lines, signatures). ``None`` for answer-only sets
            (AIME 2025, AMC 2023): they can be trained or evaluated on without hints, and asking
            for a hint on them raises :class:`~seele_env.errors.HintError`.
        source: The dataset it came from (``"gsm8k"``, ``"math"``, ``"procedural/linear"``, ...).
        metadata: Anything else the row carried (level, subject, original index, ...).
    """

    id: str
    question: str
    answer: str
    solution: str | None = None
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"Problem.{name} must be a non-empty string, got {value!r}; "
                    "every problem needs an id, a question and a final answer."
                )
        if self.solution is not None and not isinstance(self.solution, str):
            raise ValueError(f"Problem.solution must be a string or None, got {self.solution!r}.")
        # A private copy, so a caller mutating its dict cannot change a loaded problem.
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def has_solution(self) -> bool:
        """Whether a worked solution exists, i.e. whether hints can be given."""
        return bool(self.solution and self.solution.strip())
