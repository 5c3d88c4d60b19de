"""Worker process for :mod:`seele_env.verify`: runs math-verify's ``parse`` + ``verify``.

Started by the parent by file path (so the child does not import ``seele_env/__init__``); it can
also be run as ``python -m seele_env._verify_worker [--max-memory-mb N]``. It speaks
line-delimited JSON on stdin/stdout:

* on start, after the imports, it writes ``{"ready": true}``;
* each request is ``{"i": <id>, "g": <gold LaTeX>, "p": <prediction LaTeX>}``, already cleaned and
  wrapped by the parent;
* each answer is ``{"i": <id>, "c": <bool>, "e": <str or null>}``, one line per request, written
  and flushed as soon as that request is done, so the parent can time every item on its own.

The parent owns the deadline: it kills this process when an item runs too long. So math-verify's
own SIGALRM timeouts are switched off here (they only work in a main thread, and a kill is harder
than an alarm anyway). The process exits on stdin EOF, i.e. when the parent closed the pipe or died.

This module imports only the standard library and math-verify, never the rest of ``seele_env``'s
dependencies, so that a fresh worker starts quickly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from functools import lru_cache
from typing import Any

# How many parsed gold answers to keep. In GRPO-style training each gold answer is checked
# against a whole group of completions in a row, so even a small cache hits most of the time.
_GOLD_CACHE_SIZE = 1024


# Typical answer shapes, run once before the worker reports ready. The first parse/verify of
# each shape in a fresh process loads parser and sympy code lazily (~0.7 s in all, up to 0.35 s
# for one polynomial); doing it here keeps that out of the first real items' timeouts.
_WARMUP = [
    (r"\frac{1}{2}", "0.5"),
    ("(1,2]", "[1,2]"),
    (r"\{1,2\}", "2,1"),
    ("x^2+2x+1", "(x+1)^2"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"2\sqrt{5}", r"\sqrt{20}"),
    ("x=5", "5"),
    ("8+4i", "8-4i"),
    (r"30^\circ", r"\frac{\pi}{6}"),
]


def _limit_memory(max_memory_mb: int | None) -> None:
    """Cap the address space so a runaway sympy computation fails with MemoryError, not OOM."""
    if max_memory_mb is None:
        return
    try:
        import resource
    except ImportError:  # Not on this platform (Windows): run without the cap.
        return
    limit = max_memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone, even while busy on a long item (stdin EOF is not seen then)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def main(argv: list[str]) -> int:
    """Serve requests until stdin closes. Returns the process exit code."""
    max_memory_mb = None
    if len(argv) >= 2 and argv[0] == "--max-memory-mb":
        max_memory_mb = int(argv[1])
    # Ctrl-C in the terminal reaches the whole process group; the parent decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(max_memory_mb)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    # math-verify warns once that its timeouts are off, and on every timeout/parse failure;
    # all of that is expected here and would only clutter the parent's stderr.
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.CRITICAL)

    @lru_cache(maxsize=_GOLD_CACHE_SIZE)
    def parse_gold(gold: str) -> list[Any]:
        return parse(gold, parsing_timeout=None)

    def check(gold: str, pred: str) -> tuple[bool, str | None]:
        gold_parsed = parse_gold(gold)
        if not gold_parsed:
            return False, f"gold answer did not parse: {gold[:100]!r}"
        pred_parsed = parse(pred, parsing_timeout=None)
        if not pred_parsed:
            return False, f"answer did not parse: {pred[:100]!r}"
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None)), None

    for gold, pred in _WARMUP:
        with contextlib.suppress(Exception, TimeoutException):
            verify(
                parse(f"\\boxed{{{gold}}}", parsing_timeout=None),
                parse(f"\\boxed{{{pred}}}", parsing_timeout=None),
                timeout_seconds=None,
            )

    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    stdout.write(b'{"ready": true}\n')
    stdout.flush()
    while True:
        line = stdin.readline()
        if not line:
            return 0
        request_id = None
        try:
            request = json.loads(line)
            request_id = request["i"]
            correct, error = check(request["g"], request["p"])
        except MemoryError:
            correct, error = False, "out of memory in math-verify"
        # math-verify's TimeoutException derives from BaseException, so `except Exception`
        # would miss it; KeyboardInterrupt/SystemExit are still let through.
        except (Exception, TimeoutException) as exc:
            correct, error = False, f"math-verify raised {type(exc).__name__}: {str(exc)[:200]}"
        stdout.write(json.dumps({"i": request_id, "c": correct, "e": error}).encode() + b"\n")
        stdout.flush()


# =============================================================================================
# Parent side: the process handle and the pool, used by seele_env.verify (stdlib only)
# =============================================================================================

# A fresh worker imports sympy and math-verify (about 0.5 s, more on a loaded machine). That is
# not counted against the per-item timeout; this separate, generous limit catches a worker that
# cannot start at all.
STARTUP_TIMEOUT_S = 60.0
# Bytes of requests in flight per worker during a batch. Kept well under the 64 KiB pipe buffer
# so a write never blocks on a worker that is stuck on an earlier item (we could not time it out).
MAX_INFLIGHT_BYTES = 32 * 1024
# Items in flight per worker: 2 keeps a worker busy (its next item is already in its pipe) while
# leaving little work committed to one worker at the end of a batch. Measured on 2 cores, 512
# grouped items: window 2 gave 1.7-2.1x over one by one, windows 4 and 8 gave 1.4-2.2x.
MAX_INFLIGHT_ITEMS = 2


_WORKER_PATH = os.path.abspath(__file__)
# run_path does not put the worker's folder on sys.path, so seele_env's modules cannot shadow
# top-level modules that sympy or math-verify import.
_WORKER_BOOTSTRAP = (
    "import runpy, sys; path = sys.argv[1]; sys.argv = sys.argv[1:]; "
    "runpy.run_path(path, run_name='__main__')"
)


def wait_readable(fds: list[int], timeout_s: float) -> list[int]:
    """The fds among ``fds`` with data (or EOF) within ``timeout_s``. Uses poll, not select:
    select fails on fd numbers above 1024, common in big training processes."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(max(0.0, timeout_s) * 1000.0)]


class WorkerDied(Exception):
    """The worker closed its stdout (crashed, was killed, or hit the memory cap)."""


class WorkerProcess:
    """One worker subprocess (``_verify_worker.py``) and a line reader on its stdout."""

    def __init__(self, max_memory_mb: int | None) -> None:
        # The worker file is run by path rather than with `-m seele_env._verify_worker`, so
        # the child does not import `seele_env/__init__` (gymnasium, numpy, the env...): it
        # starts faster, which matters because every timeout costs a restart, and it does
        # not depend on the rest of the package importing cleanly.
        cmd = [sys.executable, "-c", _WORKER_BOOTSTRAP, _WORKER_PATH]
        if max_memory_mb is not None:
            cmd += ["--max-memory-mb", str(max_memory_mb)]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,  # so no worker holds another's pipe open and hides its EOF
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self._buffer = b""
        self.ready = False
        self.started_at = time.monotonic()
        self.next_id = 0
        self.generation = 0  # the pool generation it belongs to, see WorkerPool.close

    def send(self, payload: bytes) -> None:
        """Write request lines; raises :class:`WorkerDied` if the worker is gone."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(payload)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(self.exit_reason()) from exc

    def read_available(self) -> list[dict[str, Any]]:
        """Read what is in the pipe now (call after select says readable); parse whole lines."""
        data = os.read(self.fd, 65536)
        if not data:
            raise WorkerDied(self.exit_reason())
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        messages = []
        for line in lines:
            message = json.loads(line)
            if message.get("ready"):
                self.ready = True
            else:
                messages.append(message)
        return messages

    def wait_message(self, deadline: float) -> dict[str, Any] | None:
        """The next message (the start-up one included), or ``None`` if ``deadline`` passes."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if wait_readable([self.fd], remaining):
                data = os.read(self.fd, 65536)
                if not data:
                    raise WorkerDied(self.exit_reason())
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if message.get("ready"):
            self.ready = True
        return message

    def poll_ready(self) -> bool:
        """Whether the worker has reported ready, reading its pipe without blocking."""
        if not self.ready and wait_readable([self.fd], 0.0):
            try:
                self.read_available()
            except ValueError as exc:  # a garbled start-up line
                raise WorkerDied(f"bad start-up message: {exc}") from exc
        return self.ready

    def wait_ready(self) -> None:
        """Block until the worker has imported math-verify (not counted in any item's timeout)."""
        while not self.ready:
            message = self.wait_message(self.started_at + STARTUP_TIMEOUT_S)
            if message is None:
                raise WorkerDied(f"did not start within {STARTUP_TIMEOUT_S:.0f}s")
            if not self.ready:
                raise WorkerDied(f"unexpected message before start-up: {message!r}")

    def exit_reason(self) -> str:
        """How the process ended, for the "worker crashed: ..." verdict."""
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "pipe closed"
        if code < 0:  # killed by a signal; SIGABRT/SIGSEGV are what a failed allocation in C gives
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
        """Close the pipes and kill the process (a no-op if it is already gone)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5.0)


def make_request(worker: WorkerProcess, gold: str, pred: str) -> tuple[int, bytes]:
    """A numbered request line for ``worker``: ``(request id, payload)``."""
    request_id = worker.next_id
    worker.next_id += 1
    return request_id, json.dumps({"i": request_id, "g": gold, "p": pred}).encode() + b"\n"


class WorkerPool:
    """Idle workers plus counts of live and busy ones, shared by all threads of one
    :class:`Verifier`.

    A worker is used by one thread at a time: taken from ``idle`` (or started, while fewer than
    ``num_workers`` are busy), then given back clean, or killed if its state is unknown.

    ``spare_workers`` more are kept started beside the busy ones, so that the call after a
    timeout (whose worker is killed) takes a warm worker instead of waiting for a fresh one to
    import math-verify (0.5 s idle, 5-9 s measured on a loaded machine). A spare is started in
    the background (``Popen`` returns at once) whenever the idle list runs short.
    """

    def __init__(self, num_workers: int, max_memory_mb: int | None, spare_workers: int = 1) -> None:
        self.num_workers = num_workers
        self.max_memory_mb = max_memory_mb
        self.spare_workers = spare_workers
        self.cond = threading.Condition()
        self.idle: list[WorkerProcess] = []
        self.live = 0  # started and not yet killed: idle + busy
        self.busy = 0
        self.generation = 0  # bumped by close(); workers from an older generation are not kept
        self.cold_acquires = 0  # acquires that got a worker still starting (the caller waits)

    def _start(self) -> WorkerProcess:
        worker = WorkerProcess(self.max_memory_mb)
        worker.generation = self.generation
        return worker

    def _take_idle(self) -> WorkerProcess | None:
        """Under the lock: a ready idle worker, else the oldest starting one; dead ones dropped."""
        for worker in list(self.idle):
            try:
                ready = worker.poll_ready()
            except WorkerDied:
                self.idle.remove(worker)
                self.live -= 1
                worker.kill()
                continue
            if ready:
                self.idle.remove(worker)
                return worker
        return self.idle.pop(0) if self.idle else None

    def _top_up(self) -> None:
        """Start spares in the background until ``spare_workers`` are idle (best effort)."""
        with self.cond:
            room = self.num_workers + self.spare_workers - self.live
            missing = max(0, min(self.spare_workers - len(self.idle), room))
            self.live += missing
            generation = self.generation
        for _ in range(missing):
            try:
                worker = self._start()
            except Exception:  # cannot fork now: calls still work, just without a spare
                with self.cond:
                    self.live -= 1
                continue
            with self.cond:
                if generation == self.generation:
                    self.idle.append(worker)
                    self.cond.notify()
                    continue
                self.live -= 1
            worker.kill()

    def acquire(self, block: bool = True) -> WorkerProcess | None:
        """An idle worker (a ready one first), else a new one, while fewer than ``num_workers``
        are busy; else wait (or ``None``)."""
        with self.cond:
            while self.busy >= self.num_workers:
                if not block:
                    return None
                self.cond.wait()
            self.busy += 1
            worker = self._take_idle()
            if worker is None:
                self.live += 1
        if worker is None:
            try:
                worker = self._start()
            except BaseException:
                with self.cond:
                    self.live -= 1
                    self.busy -= 1
                    self.cond.notify()
                raise
        if not worker.ready:
            self.cold_acquires += 1
        self._top_up()
        return worker

    def release(self, worker: WorkerProcess, healthy: bool) -> None:
        """Give ``worker`` back: kept if ``healthy`` and not from before a close, else killed
        (and a spare started in its place)."""
        with self.cond:
            self.busy -= 1
            keep = healthy and worker.generation == self.generation
            if keep:
                self.idle.append(worker)
            else:
                self.live -= 1
            self.cond.notify()
        if not keep:
            worker.kill()
            self._top_up()

    def replace(self, worker: WorkerProcess) -> WorkerProcess:
        """Kill ``worker`` and put an idle one (a warm spare if any) or a fresh one in its slot."""
        worker.kill()
        with self.cond:
            self.live -= 1
            fresh = self._take_idle()
            if fresh is None:
                self.live += 1
        if fresh is None:
            try:
                fresh = self._start()
            except BaseException:
                with self.cond:
                    self.live -= 1
                raise
        self._top_up()
        return fresh

    def close(self) -> None:
        """Kill the idle workers (spares included); busy ones are killed when released."""
        with self.cond:
            self.generation += 1
            idle, self.idle = self.idle, []
            self.live -= len(idle)
        for worker in idle:
            worker.kill()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
