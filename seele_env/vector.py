"""Vector environments of seele envs, correct under ``seele_env.make_vec`` and ``gym.make_vec``.

Two Gymnasium behaviours (measured with gymnasium 1.4.0) break text episodes in
``AsyncVectorEnv``:

* shared memory (``shared_memory=True``, the default) has no way to carry arbitrary text: its
  ``Text`` support indexes every character in the space's small charset (``KeyError: ' '``) and
  fixes the observation tuple once at construction;
* with ``shared_memory=False`` and the default ``AutoresetMode.NEXT_STEP``, an explicit
  ``reset()`` does not clear a worker's pending autoreset, so the next ``step()`` resets
  instead of stepping: the actions are ignored and the rewards are 0, silently.

So this module (imported by ``seele_env``) teaches Gymnasium's shared-memory functions our
:class:`~seele_env.env.UnicodeText` space (code points in a shared buffer, read live), which
makes ``gym.make_vec(id, vectorization_mode="async")`` with its defaults correct, and refuses
the one combination it cannot make correct (async, ``shared_memory=False``, ``NEXT_STEP``) at
construction. :func:`make_vec` turns shared memory off and, by default, disables autoreset:
every episode is one step, and agents reset explicitly (usually with options such as
``hint_rate``). It is also each registered id's ``vector_entry_point``, so
``gym.make_vec(id, num_envs)`` without a ``vectorization_mode`` builds it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from gymnasium.vector.utils import (
    create_empty_array,
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

from seele_env.env import UnicodeText
from seele_env.errors import EnvUsageError

VECTORIZATION_MODES = ("sync", "async")


def make_vec(
    num_envs: int,
    *,
    env_id: str = "seele/MathHint-v0",
    vectorization_mode: str = "async",
    autoreset_mode: AutoresetMode | str = AutoresetMode.DISABLED,
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """Make ``num_envs`` copies of a seele environment as one vector env.

    Args:
        num_envs: How many environments (for ``"async"``, one process each).
        env_id: A registered seele environment id.
        vectorization_mode: ``"async"`` (default; episodes verify in parallel) or ``"sync"``.
        autoreset_mode: ``DISABLED`` (default): call ``reset()`` after every ``step()``, with
            your options. ``SAME_STEP``: ``step()`` resets finished envs itself and returns the
            next prompts, with the finished episodes' info under ``"final_info"``.
            ``NEXT_STEP`` is refused for ``"async"`` (see the module docstring).
        **env_kwargs: Passed to every environment (``dataset=``, ``hint_unit=``, ...).

    Example:
        >>> envs = make_vec(2, vectorization_mode="sync")
        >>> prompts, infos = envs.reset(seed=0, options={"hint_rate": 0.5})
        >>> _, rewards, terminated, _, infos = envs.step(("\\\\boxed{1}", "\\\\boxed{2}"))
        >>> terminated.tolist()
        [True, True]
        >>> envs.close()
    """
    if vectorization_mode not in VECTORIZATION_MODES:
        raise ValueError(
            f"vectorization_mode={vectorization_mode!r} is not one of {VECTORIZATION_MODES}."
        )
    mode = AutoresetMode(autoreset_mode)
    if vectorization_mode == "async" and mode == AutoresetMode.NEXT_STEP:
        raise ValueError(
            "autoreset_mode=NEXT_STEP with an async vector env ignores the actions of the step "
            "after an explicit reset() when shared memory is off (gymnasium 1.4); use "
            "AutoresetMode.DISABLED (reset yourself) or AutoresetMode.SAME_STEP."
        )
    vector_kwargs: dict[str, Any] = {"autoreset_mode": mode}
    if vectorization_mode == "async":
        vector_kwargs["shared_memory"] = False
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=vectorization_mode,
        vector_kwargs=vector_kwargs,
        **env_kwargs,
    )
    return ResetChecked(envs) if mode == AutoresetMode.DISABLED else envs


class ResetChecked(gym.vector.VectorWrapper):
    """Without autoreset, a ``step()`` with an env not reset is an :class:`EnvUsageError`.

    Gymnasium answers it with ``ResetNeeded`` (before the first reset) or, in ``SyncVectorEnv``,
    a bare ``AssertionError`` (a second step without a reset). ``call``, ``get_attr`` and
    ``set_attr`` reach the vector env below.
    """

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self._in_play = np.zeros(env.num_envs, dtype=bool)  # [num_envs]

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> Any:
        mask = None if options is None else options.get("reset_mask")
        result = self.env.reset(seed=seed, options=options)
        self._in_play[:] = True if mask is None else (self._in_play | np.asarray(mask, bool))
        return result

    def step(self, actions: Any) -> Any:
        if not self._in_play.all():
            idle = np.flatnonzero(~self._in_play).tolist()
            raise EnvUsageError(
                f"step() was called with no problem in play in env(s) {idle}; call reset() "
                "first (every episode is one step and autoreset is off, so reset() again after "
                "each step(), or use autoreset_mode=AutoresetMode.SAME_STEP)."
            )
        self._in_play[:] = False
        return self.env.step(actions)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call ``name`` on every sub-environment (as the vector env's ``call``)."""
        return self.env.call(name, *args, **kwargs)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute ``name`` of every sub-environment."""
        return self.env.get_attr(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Set the attribute ``name`` of the sub-environments."""
        self.env.set_attr(name, values)


def _vector_entry_point(env_id: str) -> Callable[..., gym.vector.VectorEnv]:
    def entry_point(num_envs: int = 1, **env_kwargs: Any) -> gym.vector.VectorEnv:
        return make_vec(num_envs, env_id=env_id, **env_kwargs)

    entry_point.__doc__ = f"``gym.make_vec({env_id!r}, num_envs)``: :func:`make_vec` for this id."
    return entry_point


# The ``vector_entry_point`` of each registered id (see ``seele_env/__init__.py``).
make_math_hint_vec = _vector_entry_point("seele/MathHint-v0")
make_seele_vec = _vector_entry_point("seele/SEELE-v0")
make_curriculum_vec = _vector_entry_point("seele/Curriculum-v0")


# -- Gymnasium's shared memory for UnicodeText ---------------------------------------------------
# One row per env: [length, code point 1, ..., code point max_length] as uint32. Text is encoded
# as UTF-32 with surrogatepass, so any Python str (lone surrogates included) round-trips.


class SharedTexts(Sequence[str]):
    """The live text observations in an ``AsyncVectorEnv``'s shared memory.

    ``AsyncVectorEnv`` reads its shared memory once, at construction, and returns that object
    after every call (a copy of it with ``copy=True``, the default). A numpy array is a live view;
    so is this: indexing decodes the current text, and ``deepcopy`` gives a plain tuple of str.
    """

    def __init__(self, buffer: Any, n: int, max_length: int) -> None:
        self._rows = np.frombuffer(buffer.get_obj(), dtype=np.uint32).reshape(n, max_length + 1)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self)[index]
        row = self._rows[index]
        return row[1 : 1 + int(row[0])].tobytes().decode("utf-32-le", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


@create_shared_memory.register(UnicodeText)
def _create_unicode_shared_memory(space: UnicodeText, n: int = 1, ctx: Any = None) -> Any:
    import multiprocessing

    ctx = ctx if ctx is not None else multiprocessing
    return ctx.Array(np.dtype(np.uint32).char, n * (space.max_length + 1))


@read_from_shared_memory.register(UnicodeText)
def _read_unicode_shared_memory(space: UnicodeText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, space.max_length)


@write_to_shared_memory.register(UnicodeText)
def _write_unicode_shared_memory(
    space: UnicodeText, index: int, values: str, shared_memory: Any
) -> None:
    codes = np.frombuffer(values.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(codes) > space.max_length:
        raise EnvUsageError(
            f"A text observation of {len(codes)} characters does not fit the observation "
            f"space's max_length={space.max_length}."
        )
    row = np.frombuffer(shared_memory.get_obj(), dtype=np.uint32)[
        index * (space.max_length + 1) : (index + 1) * (space.max_length + 1)
    ]
    row[0] = len(codes)
    row[1 : 1 + len(codes)] = codes


@create_empty_array.register(UnicodeText)
def _create_unicode_empty_array(space: UnicodeText, n: int = 1, fn: Any = np.zeros) -> Any:
    # AsyncVectorEnv calls this from its __init__ only when shared_memory=False. That setting with
    # NEXT_STEP autoreset swallows the step after each explicit reset (reward 0 for any answer),
    # and nothing in the env can see it happen; so refuse it here, where the vector env is built.
    frame = sys._getframe(1)
    for _ in range(4):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, AsyncVectorEnv) and frame.f_code.co_name == "__init__":
            if not owner.shared_memory and owner.autoreset_mode == AutoresetMode.NEXT_STEP:
                raise EnvUsageError(ASYNC_NEXT_STEP_WITHOUT_SHARED_MEMORY)
            break
        frame = frame.f_back
    return tuple(space.characters[0] * space.min_length for _ in range(n))


ASYNC_NEXT_STEP_WITHOUT_SHARED_MEMORY = (
    "AsyncVectorEnv(shared_memory=False) with autoreset_mode=NEXT_STEP ignores the actions of the "
    "step after every explicit reset() in gymnasium 1.4 (every such answer would score 0). Use "
    "seele_env.make_vec(num_envs, vectorization_mode='async'), or gym.make_vec(id, num_envs) "
    "without vectorization_mode, or keep gymnasium's default shared_memory=True, or pass "
    "vector_kwargs={'shared_memory': False, 'autoreset_mode': AutoresetMode.DISABLED}."
)
