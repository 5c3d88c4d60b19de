"""seele_env: a Gymnasium math environment with adaptive hint scaffolding and verified rewards.

Importing this package registers the environments, so ``gym.make("seele/MathHint-v0")`` works
after ``import seele_env`` (or without the import, as ``gym.make("seele_env:seele/MathHint-v0")``).
It never imports torch or transformers. ``__version__`` is the version of the installed
distribution, ``seele-rl``.
"""

from __future__ import annotations

from importlib import metadata as _metadata

import gymnasium as gym

from seele_env.env import MathHintEnv, UnicodeText
from seele_env.errors import DatasetError, EnvUsageError, HintError, SeeleError
from seele_env.hints import hint_length, render_prompt, split_units
from seele_env.loaders import ProblemSet, load_problems
from seele_env.problems import Problem
from seele_env.procedural import generate_problems
from seele_env.vector import make_vec
from seele_env.verify import Verdict, Verifier, extract_answer

__all__ = [
    "DatasetError",
    "EnvUsageError",
    "HintError",
    "MathHintEnv",
    "Problem",
    "ProblemSet",
    "SeeleError",
    "UnicodeText",
    "Verdict",
    "Verifier",
    "extract_answer",
    "generate_problems",
    "hint_length",
    "load_problems",
    "make_vec",
    "render_prompt",
    "split_units",
]

try:  # the installed distribution's version; a source tree that was never installed has none
    __version__ = _metadata.version("seele-rl")
except _metadata.PackageNotFoundError:
    __version__ = "0+unknown"

# Each id's vector_entry_point is seele_env.make_vec, so gym.make_vec(id, num_envs) without a
# vectorization_mode builds the vector env text episodes need (see seele_env/vector.py, which also
# makes gymnasium's own "sync" and "async" modes correct or refuses the one setting they get wrong).
_IDS = {
    "seele/MathHint-v0": ("seele_env.env:MathHintEnv", "make_math_hint_vec"),
    "seele/SEELE-v0": ("seele_env.curricula:make_seele_env", "make_seele_vec"),
    "seele/Curriculum-v0": ("seele_env.curricula:make_curriculum_env", "make_curriculum_vec"),
}
for _id, (_entry_point, _vector_entry_point) in _IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point=_entry_point,
            vector_entry_point=f"seele_env.vector:{_vector_entry_point}",
        )
