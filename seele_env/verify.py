"""The verifier: extract a model's final answer and compare it with the gold one via math-verify.

Guarantees (see ``docs/verifier.md``):

* :meth:`Verifier.verify` never raises for any input and works from any thread; every failure
  becomes a :class:`Verdict` with ``correct=False`` and a short ``error``.
* math-verify runs in persistent worker subprocesses with a hard per-call timeout: a call that
  runs past ``timeout_s`` gets its worker killed and a timeout verdict.
* Inputs are size-capped, workers are memory-capped, and model text is never ``eval``-ed or
  ``sympify``-ed: only math-verify's LaTeX parser sees the (bounded) extracted answer.

Example:
    >>> from seele_env.verify import Verifier, extract_answer
    >>> extract_answer(r"so $x = 4$, and the total is \\boxed{18}.")
    ('18', 'boxed')
    >>> with Verifier(timeout_s=5.0) as verifier:
    ...     verifier.verify("18", r"... the total is \\boxed{18}.").correct
    True
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seele_env._verify_worker import (
    MAX_INFLIGHT_BYTES,
    MAX_INFLIGHT_ITEMS,
    STARTUP_TIMEOUT_S,
    WorkerDied,
    WorkerPool,
    WorkerProcess,
    make_request,
    wait_readable,
)
from seele_env.extract import FORMATTED_METHODS, clean_answer, extract_answer, gold_latex, to_latex

__all__ = ["Verdict", "Verifier", "extract_answer", "verify"]

# ---------------------------------------------------------------------------------------------
# Verdict
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The result of checking one completion against a gold answer.

    Attributes:
        correct: Whether the extracted answer is mathematically equal to the gold answer.
        extracted_answer: What :func:`extract_answer` found (before cleanup), ``None`` if nothing.
        error: ``None`` when the check ran normally; else a short reason, e.g.
            ``"timeout after 5.0s"``, ``"no answer found"``, ``"completion too long: ... chars"``,
            ``"gold answer did not parse: ..."``, ``"worker crashed: ..."``. ``correct`` is
            ``False`` whenever ``error`` is set.
        formatted: The answer was given in an explicit answer format (``\\boxed{}`` or
            ``<answer>...</answer>``), for an optional format reward.
    """

    correct: bool
    extracted_answer: str | None
    error: str | None
    formatted: bool

    def reward(self, format_weight: float = 0.0) -> float:
        """The scalar reward: 1 if correct, plus ``format_weight`` if the answer was formatted.

        Args:
            format_weight: Bonus for an explicitly formatted answer (0 disables the format reward).

        Example:
            >>> Verdict(False, "3", None, True).reward(format_weight=0.1)
            0.1
        """
        return float(self.correct) + format_weight * float(self.formatted)


# ---------------------------------------------------------------------------------------------
# Verifier
# ---------------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """An item after the parent-side work: either a final verdict or a request for a worker."""

    verdict: Verdict | None
    gold: str = ""
    pred: str = ""
    extracted: str | None = None
    formatted: bool = False


def _error(extracted: str | None, formatted: bool, error: str) -> Verdict:
    return Verdict(correct=False, extracted_answer=extracted, error=error, formatted=formatted)


class Verifier:
    """Checks completions against gold answers with math-verify, safely.

    Workers are started lazily on the first call; :meth:`verify` uses one, :meth:`verify_batch`
    grows the pool to ``num_workers``. After :meth:`close` the verifier stays usable and restarts
    workers lazily. A verifier can be pickled or deep-copied (the copy starts its own workers).

    Args:
        timeout_s: Hard limit in seconds on math-verify's work for one item. A worker that runs
            longer is killed and replaced. Worker start-up (~0.5 s) is not counted.
        max_completion_chars: Longer completions are not checked (``correct=False`` with an
            error). 200,000 chars is ~50k tokens: above normal RL completions (up to ~32k tokens),
            below pathological repetition loops.
        max_answer_chars: Longer extracted (or gold) answers are not checked: a final answer is
            short, and parse time grows with length.
        num_workers: Worker processes for :meth:`verify_batch` and concurrent callers; default
            ``os.cpu_count()``.
        max_memory_mb: Address-space cap per worker (``RLIMIT_AS``; ignored where the
            ``resource`` module is missing). ``None`` disables it. An idle worker uses ~70 MB.
        spare_workers: Workers kept started beside the busy ones (1 by default), so that the
            call after a timeout, whose worker is killed, does not wait for a fresh worker's
            start-up (0.5 s idle, up to ~9 s on a loaded machine). 0 saves ~70 MB per spare.

    Example:
        >>> verifier = Verifier(timeout_s=2.0)
        >>> verifier.verify("\\\\frac{1}{2}", "The answer is 0.5.").correct
        True
        >>> verifier.close()
    """

    def __init__(
        self,
        timeout_s: float = 5.0,
        max_completion_chars: int = 200_000,
        max_answer_chars: int = 1_000,
        num_workers: int | None = None,
        max_memory_mb: int | None = 1_024,
        spare_workers: int = 1,
    ) -> None:
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, (int, float))
            or not (0 < timeout_s < float("inf"))
        ):
            raise ValueError(
                f"timeout_s must be a finite number > 0, got {timeout_s!r}; e.g. timeout_s=5.0."
            )
        for name, value, example in (
            ("max_completion_chars", max_completion_chars, 200_000),
            ("max_answer_chars", max_answer_chars, 1_000),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}; e.g. {example}.")
        if num_workers is None:
            num_workers = os.cpu_count() or 1
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(
                f"num_workers must be an int >= 1 or None (= os.cpu_count()), got {num_workers!r}."
            )
        if max_memory_mb is not None and (
            isinstance(max_memory_mb, bool)
            or not isinstance(max_memory_mb, int)
            or max_memory_mb < 256
        ):
            raise ValueError(
                f"max_memory_mb must be an int >= 256 (a worker needs ~70 MB plus headroom for "
                f"sympy) or None to disable the cap, got {max_memory_mb!r}."
            )
        if (
            isinstance(spare_workers, bool)
            or not isinstance(spare_workers, int)
            or spare_workers < 0
        ):
            raise ValueError(f"spare_workers must be an int >= 0, got {spare_workers!r}; e.g. 1.")
        self.timeout_s = float(timeout_s)
        self.max_completion_chars = max_completion_chars
        self.max_answer_chars = max_answer_chars
        self.num_workers = num_workers
        self.max_memory_mb = max_memory_mb
        self.spare_workers = spare_workers
        self._start_pool()

    def _start_pool(self) -> None:
        self._pool = WorkerPool(self.num_workers, self.max_memory_mb, self.spare_workers)
        # Closes the workers when the verifier is garbage-collected or the interpreter exits;
        # refers to the pool only, so it does not keep the verifier alive.
        self._finalizer = weakref.finalize(self, self._pool.close)

    # -- pickling: worker handles are dropped and restart lazily ------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_pool"], state["_finalizer"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("spare_workers", 1)  # pickled before spares existed
        self.__dict__.update(state)
        self._start_pool()

    def __repr__(self) -> str:
        return (
            f"Verifier(timeout_s={self.timeout_s}, max_completion_chars="
            f"{self.max_completion_chars}, max_answer_chars={self.max_answer_chars}, "
            f"num_workers={self.num_workers}, max_memory_mb={self.max_memory_mb}, "
            f"spare_workers={self.spare_workers})"
        )

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the idle workers now (busy ones stop when their call ends). Reuse restarts them."""
        self._pool.close()

    # -- parent-side preparation ---------------------------------------------------------------

    def _prepare(self, gold: object, completion: object) -> _Prepared:
        if not isinstance(completion, str):
            msg = f"completion must be a str, got {type(completion).__name__}"
            return _Prepared(_error(None, False, msg))
        if not isinstance(gold, str):
            return _Prepared(_error(None, False, f"gold must be a str, got {type(gold).__name__}"))
        if len(completion) > self.max_completion_chars:
            msg = f"completion too long: {len(completion)} chars > {self.max_completion_chars}"
            return _Prepared(_error(None, False, msg))
        if len(gold) > self.max_answer_chars:
            msg = f"gold answer too long: {len(gold)} chars > {self.max_answer_chars}"
            return _Prepared(_error(None, False, msg))
        extracted, method = extract_answer(completion)
        formatted = method in FORMATTED_METHODS
        if extracted is None:
            return _Prepared(_error(None, False, "no answer found"))
        if len(extracted) > self.max_answer_chars:
            msg = f"answer too long: {len(extracted)} chars > {self.max_answer_chars}"
            return _Prepared(_error(extracted, formatted, msg))
        if not gold.strip():
            return _Prepared(_error(extracted, formatted, "gold answer did not parse: empty"))
        pred = clean_answer(extracted)
        if not pred:
            return _Prepared(_error(extracted, formatted, "no answer found"))
        return _Prepared(None, gold_latex(gold), to_latex(pred), extracted, formatted)

    @staticmethod
    def _finish(item: _Prepared, message: dict[str, Any]) -> Verdict:
        error = message.get("e")
        correct = bool(message.get("c")) and error is None
        return Verdict(correct, item.extracted, error, item.formatted)

    # -- single call ---------------------------------------------------------------------------

    def verify(self, gold: str, completion: str) -> Verdict:
        """Check one completion against one gold answer.

        Never raises for any input, works from any thread, and returns within about
        ``timeout_s`` of math-verify time (plus worker start-up on the first call).

        Args:
            gold: The gold final answer, bare (``\\frac{1}{2}``, ``(1,2]``) or boxed.
            completion: The model's text.

        Returns:
            A :class:`Verdict`.
        """
        item = self._prepare(gold, completion)
        if item.verdict is not None:
            return item.verdict
        try:
            worker = self._pool.acquire()
        except Exception as exc:  # e.g. cannot fork: out of processes or memory
            return _error(item.extracted, item.formatted, f"worker failed to start: {exc}")
        assert worker is not None
        healthy = False
        try:
            worker.wait_ready()
            request_id, payload = make_request(worker, item.gold, item.pred)
            worker.send(payload)
            message = worker.wait_message(time.monotonic() + self.timeout_s)
            if message is None:
                return _error(item.extracted, item.formatted, f"timeout after {self.timeout_s}s")
            if message.get("i") != request_id:
                msg = f"worker crashed: out-of-order reply {message!r}"
                return _error(item.extracted, item.formatted, msg)
            healthy = True
            return self._finish(item, message)
        except WorkerDied as exc:
            return _error(item.extracted, item.formatted, f"worker crashed: {exc}")
        except Exception as exc:  # a garbled reply: count it as a crash, not the caller's problem
            msg = f"worker crashed: {type(exc).__name__}: {exc}"
            return _error(item.extracted, item.formatted, msg)
        finally:
            # On timeout, crash or KeyboardInterrupt the worker's state is unknown: kill it,
            # a fresh one starts lazily on the next call.
            self._pool.release(worker, healthy)

    # -- batch ---------------------------------------------------------------------------------

    def verify_batch(self, golds: Sequence[str], completions: Sequence[str]) -> list[Verdict]:
        """Check many completions using up to ``num_workers`` worker processes.

        Items are streamed to the workers a few at a time; each item has its own hard
        ``timeout_s`` (counted from when its worker starts on it). A worker that times out or
        crashes is replaced and its remaining items resubmitted, so one bad item costs only
        its own verdict.

        Args:
            golds: Gold answers, one per completion.
            completions: Model texts.

        Returns:
            One :class:`Verdict` per input, in input order.

        Raises:
            ValueError: If the two sequences differ in length (a caller bug, not a bad input).
        """
        if len(golds) != len(completions):
            raise ValueError(
                f"verify_batch needs one gold per completion, got {len(golds)} golds and "
                f"{len(completions)} completions; repeat each gold for its group of completions."
            )
        prepared = [self._prepare(g, c) for g, c in zip(golds, completions, strict=True)]
        results: list[Verdict | None] = [p.verdict for p in prepared]
        todo = deque(i for i, p in enumerate(prepared) if p.verdict is None)
        if not todo:
            return results  # type: ignore[return-value]
        try:
            workers = [self._pool.acquire()]
        except Exception as exc:
            for i in todo:
                results[i] = _error(
                    prepared[i].extracted, prepared[i].formatted, f"worker failed to start: {exc}"
                )
            return results  # type: ignore[return-value]
        try:
            while len(workers) < min(self.num_workers, len(todo)):
                extra = self._pool.acquire(block=False)
                if extra is None:
                    break
                workers.append(extra)
        except Exception:
            pass  # run with the workers we have
        _BatchRun(self, prepared, results, todo, workers).run()
        return results  # type: ignore[return-value]


@dataclass
class _InFlight:
    index: int
    request_id: int
    sent_at: float
    size: int


class _BatchRun:
    """The event loop of one :meth:`Verifier.verify_batch` call over the workers it holds."""

    def __init__(
        self,
        verifier: Verifier,
        prepared: list[_Prepared],
        results: list[Verdict | None],
        todo: deque[int],
        workers: list[WorkerProcess | None],
    ) -> None:
        self.verifier = verifier
        self.pool = verifier._pool
        self.prepared = prepared
        self.results = results
        self.todo = todo
        self.workers = workers
        self.inflight: dict[int, deque[_InFlight]] = {id(w): deque() for w in workers}
        self.last_message: dict[int, float] = {}

    def _fail(self, index: int, error: str) -> None:
        item = self.prepared[index]
        self.results[index] = _error(item.extracted, item.formatted, error)

    def _drop(self, slot: int, error: str) -> None:
        """Worker in ``slot`` failed: its current item gets ``error``, the rest go back in the
        queue (front, in order), and a fresh worker takes the slot."""
        worker = self.workers[slot]
        assert worker is not None
        queue = self.inflight.pop(id(worker))
        self.last_message.pop(id(worker), None)
        if queue:
            self._fail(queue.popleft().index, error)
            self.todo.extendleft(reversed([entry.index for entry in queue]))
        try:
            fresh = self.pool.replace(worker)
        except Exception:  # the slot is lost (replace() has already counted the dead worker)
            with self.pool.cond:
                self.pool.busy -= 1
                self.pool.cond.notify()
            fresh = None
        self.workers[slot] = fresh
        if fresh is not None:
            self.inflight[id(fresh)] = deque()

    def _fill(self, slot: int, now: float) -> None:
        worker = self.workers[slot]
        assert worker is not None
        queue = self.inflight[id(worker)]
        payloads = []
        inflight_bytes = sum(entry.size for entry in queue)
        while self.todo and len(queue) < MAX_INFLIGHT_ITEMS:
            item = self.prepared[self.todo[0]]
            request_id, payload = make_request(worker, item.gold, item.pred)
            if queue and inflight_bytes + len(payload) > MAX_INFLIGHT_BYTES:
                worker.next_id -= 1
                break
            queue.append(_InFlight(self.todo.popleft(), request_id, now, len(payload)))
            inflight_bytes += len(payload)
            payloads.append(payload)
        if payloads:
            worker.send(b"".join(payloads))

    def _deadline(self, worker: WorkerProcess) -> float | None:
        queue = self.inflight[id(worker)]
        if not queue:
            return None
        if not worker.ready:
            return worker.started_at + STARTUP_TIMEOUT_S
        started = max(queue[0].sent_at, self.last_message.get(id(worker), 0.0))
        return started + self.verifier.timeout_s

    def run(self) -> None:
        try:
            self._loop()
        finally:
            for worker in self.workers:
                if worker is not None:
                    # A worker with nothing in flight is clean even if the loop was interrupted.
                    clean = not self.inflight.get(id(worker))
                    self.pool.release(worker, clean)

    def _loop(self) -> None:
        timeout_s = self.verifier.timeout_s
        while True:
            now = time.monotonic()
            for slot, worker in enumerate(self.workers):
                if worker is not None:
                    try:
                        self._fill(slot, now)
                    except WorkerDied as exc:
                        self._drop(slot, f"worker crashed: {exc}")
            if not any(self.inflight.get(id(w)) for w in self.workers if w is not None):
                if self.todo:  # every worker slot was lost and none could be restarted
                    for index in self.todo:
                        self._fail(index, "worker failed to start")
                    self.todo.clear()
                return
            busy = {w.fd: slot for slot, w in enumerate(self.workers) if w and self.inflight[id(w)]}
            deadlines = [self._deadline(self.workers[slot]) for slot in busy.values()]  # type: ignore[arg-type]
            wait = max(0.0, min(d for d in deadlines if d is not None) - time.monotonic())
            readable = wait_readable(list(busy), wait)
            now = time.monotonic()
            for fd in readable:
                slot = busy[fd]
                worker = self.workers[slot]
                assert worker is not None
                try:
                    was_ready = worker.ready
                    messages = worker.read_available()
                    if worker.ready and not was_ready:
                        self.last_message[id(worker)] = now
                    queue = self.inflight[id(worker)]
                    for message in messages:
                        entry = queue.popleft()
                        if message.get("i") != entry.request_id:
                            raise WorkerDied(f"out-of-order reply {message!r}")
                        self.results[entry.index] = Verifier._finish(
                            self.prepared[entry.index], message
                        )
                        self.last_message[id(worker)] = now
                except (WorkerDied, ValueError, IndexError) as exc:
                    self._drop(slot, f"worker crashed: {exc}")
            for slot, worker in enumerate(self.workers):
                if worker is None or not self.inflight.get(id(worker)):
                    continue
                deadline = self._deadline(worker)
                if deadline is not None and now >= deadline:
                    reason = (
                        f"timeout after {timeout_s}s"
                        if worker.ready
                        else f"worker crashed: did not start within {STARTUP_TIMEOUT_S:.0f}s"
                    )
                    self._drop(slot, reason)


# ---------------------------------------------------------------------------------------------
# Module-level convenience
# ---------------------------------------------------------------------------------------------

_default_verifier: Verifier | None = None
_default_lock = threading.Lock()


def verify(gold: str, completion: str) -> Verdict:
    """Check one completion with a shared, lazily created default :class:`Verifier`.

    Example:
        >>> verify("18", "#### 18").correct
        True
    """
    global _default_verifier
    if _default_verifier is None:
        with _default_lock:
            if _default_verifier is None:
                _default_verifier = Verifier()
    return _default_verifier.verify(gold, completion)
