"""Loader results: a :class:`ProblemSet` of problems and the :class:`LoadReport` of the load."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from seele_env.errors import DatasetError
from seele_env.problems import Problem

__all__ = ["DatasetWarning", "LoadReport", "ProblemSet", "UnknownProblemError"]

#: How many skipped rows a report keeps as examples.
MAX_EXAMPLES = 5


class DatasetWarning(UserWarning):
    """Some rows of a dataset were skipped; the message is the load's one-line summary."""


class UnknownProblemError(DatasetError, KeyError):
    """:meth:`ProblemSet.get` was given an id the set does not hold.

    It is a :class:`KeyError` (so ``except KeyError`` works, as for a dict) and a
    :class:`~seele_env.errors.DatasetError`.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would show the message in quotes; show it as written.
        return str(self.args[0]) if self.args else ""


@dataclass
class LoadReport:
    """What happened while loading one dataset: rows seen, problems kept, rows skipped and why.

    Attributes:
        dataset: The dataset name (``"gsm8k"``) or, for generic files, the file stem.
        location: The file that was read, or the hub id (with config and split) that was loaded.
        n_rows: Rows read. With ``limit`` reading stops early, so this counts only the rows read.
        n_loaded: Problems kept.
        skipped: Reason -> number of rows skipped for it, e.g. ``{"missing question": 2}``.
        examples: The first few skipped rows as ``(row index, detailed reason)``.
        stopped_at_limit: Whether reading stopped because ``limit`` problems were loaded.

    Example:
        >>> LoadReport("gsm8k", "data/gsm8k/test.jsonl", 1319, 1319).summary()
        'gsm8k test.jsonl: 1319 rows, 1319 loaded, 0 skipped'
    """

    dataset: str
    location: str
    n_rows: int = 0
    n_loaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[int, str]] = field(default_factory=list)
    stopped_at_limit: bool = False

    @property
    def n_skipped(self) -> int:
        """Total number of skipped rows."""
        return sum(self.skipped.values())

    def skip(self, index: int, reason: str, detail: str | None = None) -> None:
        """Count row ``index`` as skipped for ``reason`` (``detail`` goes into the examples)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((index, detail or reason))

    def summary(self) -> str:
        """One human line, e.g. ``"gsm8k test.jsonl: 1319 rows, 1319 loaded, 0 skipped"``."""
        # Only the file name: full paths make the line long and say little.
        where = Path(self.location).name if _is_path(self.location) else self.location
        line = (
            f"{self.dataset} {where}: {self.n_rows} rows, {self.n_loaded} loaded, "
            f"{self.n_skipped} skipped"
        )
        if self.skipped:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in self.skipped.items())
            line += (
                f" ({reasons}; first: {', '.join(f'row {i}: {r}' for i, r in self.examples[:3])})"
            )
        if self.stopped_at_limit:
            line += " [stopped at limit]"
        return line

    def warn_if_skipped(self) -> None:
        """Emit one :class:`DatasetWarning` with :meth:`summary` when any row was skipped."""
        if self.skipped:
            warnings.warn(self.summary(), DatasetWarning, stacklevel=3)


def _is_path(location: str) -> bool:
    return location.endswith((".jsonl", ".json", ".parquet", ".csv"))


class ProblemSet(Sequence[Problem]):
    """An ordered, id-indexed collection of :class:`~seele_env.problems.Problem` records.

    Loaders return one; users may also build one by hand. Ids must be unique.

    Args:
        problems: The problems, in order.
        report: The :class:`LoadReport` of the load they came from; by default a report saying
            they were built in memory.

    Example:
        >>> ps = ProblemSet([Problem(id="p/1", question="1+1?", answer="2")])
        >>> len(ps), ps.ids, ps.get("p/1").answer
        (1, ['p/1'], '2')
        >>> "p/1" in ps
        True
    """

    def __init__(self, problems: Iterable[Problem], report: LoadReport | None = None) -> None:
        self._problems: list[Problem] = list(problems)
        self._index: dict[str, int] = {}
        for i, problem in enumerate(self._problems):
            if not isinstance(problem, Problem):
                raise DatasetError(
                    f"ProblemSet item {i} is a {type(problem).__name__}, not a Problem; "
                    "build Problem(id=..., question=..., answer=...) records first."
                )
            if problem.id in self._index:
                raise DatasetError(
                    f"duplicate problem id {problem.id!r} (items {self._index[problem.id]} "
                    f"and {i}); ids must be unique within a ProblemSet."
                )
            self._index[problem.id] = i
        n = len(self._problems)
        self.report = report if report is not None else LoadReport("custom", "<memory>", n, n)

    @overload
    def __getitem__(self, index: int) -> Problem: ...

    @overload
    def __getitem__(self, index: slice) -> ProblemSet: ...

    def __getitem__(self, index: int | slice) -> Problem | ProblemSet:
        """A problem by position, or a new set for a slice (sharing this set's report)."""
        if isinstance(index, slice):
            return ProblemSet(self._problems[index], self.report)
        return self._problems[index]

    def __len__(self) -> int:
        return len(self._problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self._problems)

    def __contains__(self, item: object) -> bool:
        """``"id" in ps`` checks ids; ``problem in ps`` checks the record."""
        if isinstance(item, str):
            return item in self._index
        if not isinstance(item, Problem):
            return False
        i = self._index.get(item.id)
        return i is not None and self._problems[i] == item

    def __repr__(self) -> str:
        return f"ProblemSet({len(self)} problems, report={self.report.summary()!r})"

    @property
    def ids(self) -> list[str]:
        """Problem ids, in order."""
        return [p.id for p in self._problems]

    def get(self, problem_id: str) -> Problem:
        """The problem with id ``problem_id``.

        Raises:
            UnknownProblemError: No such id; the message suggests close ids ("did you mean").

        Example:
            >>> ps = ProblemSet([Problem(id="gsm8k/test/0", question="q", answer="1")])
            >>> try:
            ...     ps.get("gsm8k/test/1")
            ... except KeyError as err:
            ...     print(err)
            unknown problem id 'gsm8k/test/1' in 1 problems (custom); did you mean 'gsm8k/test/0'?
        """
        i = self._index.get(problem_id)
        if i is not None:
            return self._problems[i]
        close = difflib.get_close_matches(str(problem_id), self._index, n=3, cutoff=0.6)
        if close:
            hint = f"; did you mean {', '.join(map(repr, close))}?"
        elif self._problems:
            hint = f"; ids look like {self._problems[0].id!r}."
        else:
            hint = "; the set is empty."
        raise UnknownProblemError(
            f"unknown problem id {problem_id!r} in {len(self)} problems "
            f"({self.report.dataset}){hint}"
        )
