"""Stopping a training run cleanly: Ctrl-C and SIGTERM save the last finished step.

:class:`Boundary` remembers the run's state at the end of the last finished step;
:class:`Interrupts` turns SIGINT and SIGTERM into :class:`KeyboardInterrupt` at a point where that
state is intact, so the checkpoint saved on the way out is the one an uninterrupted run would
have written (``seele_agents.training.loop.loop``).
"""

from __future__ import annotations

import copy
import signal
import threading
from typing import TYPE_CHECKING, Any

from seele_agents.training.checkpoint import capture_rng_state, restore_rng_state

if TYPE_CHECKING:
    from seele_agents.training.build import Run


class Terminated(KeyboardInterrupt):
    """SIGTERM (or another stop signal) arrived; handled like Ctrl-C.

    Attributes:
        signum: The signal's number; ``seele train`` exits with ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class Boundary:
    """The run's state at the end of the last finished step, and whether the step under way has
    changed the weights yet (an optimiser step has begun).

    A step first samples (which moves the curriculum, the sampling RNG and the global RNGs),
    then updates the weights. Interrupted before its first optimiser step, the run's
    parameters, optimiser and scheduler are still those of the last finished step, and the
    rest is put back from the snapshot taken there (:meth:`restore`), so the checkpoint saved
    is the one an uninterrupted run would have written at that step. Once the weights are
    changing, a signal waits for the step to end (:class:`Interrupts`).
    """

    def __init__(self, run: Run, step: int) -> None:
        self.run, self.start, self.done = run, step, step
        self.touched = False
        self.pending: int | None = None
        self._hook = run.optimizer.register_step_pre_hook(self._touch)
        self.snapshot()

    def _touch(self, *args: Any) -> None:
        self.touched = True

    def snapshot(self) -> None:
        """Remember the state that an optimiser step does not cover (a few kilobytes)."""
        self.curriculum = copy.deepcopy(self.run.env.state_dict())
        self.generator_rng = self.run.generator.get_rng_state()
        self.rng = capture_rng_state()

    def finish(self, step: int) -> None:
        """``step`` is done: from here a signal stops the run at once."""
        self.done, self.touched = step, False
        self.snapshot()

    def restore(self) -> None:
        """Put back the state of the last finished step (valid while not :attr:`touched`)."""
        self.run.env.load_state_dict(self.curriculum)
        self.run.generator.set_rng_state(self.generator_rng)
        restore_rng_state(self.rng)

    def raise_pending(self) -> None:
        """Raise the interrupt that waited for the step to end, if any."""
        if self.pending is not None:
            raise _interrupt(self.pending)

    def close(self) -> None:
        self._hook.remove()


def _interrupt(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


class Interrupts:
    """SIGINT and SIGTERM as :class:`KeyboardInterrupt` (SIGTERM's: :class:`Terminated`),
    raised at once unless the weights are changing; then at the end of the step (a second
    signal does not wait). Installed only in the main thread (Python's rule)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, boundary: Boundary, echo: Any) -> None:
        self.boundary, self.echo = boundary, echo
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        boundary = self.boundary
        if boundary.touched and boundary.pending is None:
            boundary.pending = signum
            self.echo(
                f"\nsignal {signal.Signals(signum).name}: finishing step {boundary.done + 1}, "
                "which is updating the weights, then saving it (signal again to stop at once, "
                "without saving it)"
            )
            return
        raise _interrupt(signum)
