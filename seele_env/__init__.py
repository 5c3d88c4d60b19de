"""seele_env: a Gymnasium math environment with adaptive hint scaffolding and verified rewards.

Importing this package registers the environments, so ``gym.make("seele/MathHint-v0")`` works
after ``import seele_env`` (or without the import, as ``gym.make("seele_env:seele/MathHint-v0")``).
It never imports torch or transformers.
"""

from __future__ import annotations

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

if "seele/MathHint-v0" not in gym.registry:
    gym.register(id="seele/MathHint-v0", entry_point="seele_env.env:MathHintEnv")
if "seele/SEELE-v0" not in gym.registry:
    gym.register(id="seele/SEELE-v0", entry_point="seele_env.curricula:make_seele_env")
if "seele/Curriculum-v0" not in gym.registry:
    gym.register(id="seele/Curriculum-v0", entry_point="seele_env.curricula:make_curriculum_env")
