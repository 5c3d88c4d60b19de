"""``make_vec``: vector environments set up the way text, one-step episodes need them.

Two Gymnasium defaults (measured with gymnasium 1.4.0) break text episodes in
``AsyncVectorEnv``:

* ``shared_memory=True`` returns ``'0' * max_length`` for every text observation;
* with ``shared_memory=False`` and the default ``AutoresetMode.NEXT_STEP``, an explicit
  ``reset()`` does not clear a worker's pending autoreset, so the next ``step()`` resets
  instead of stepping: the actions are ignored and the rewards are 0.

:func:`make_vec` turns shared memory off and, by default, disables autoreset: every episode
is one step, and agents reset explicitly (usually with options such as ``hint_rate``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

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
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=vectorization_mode,
        vector_kwargs=vector_kwargs,
        **env_kwargs,
    )
