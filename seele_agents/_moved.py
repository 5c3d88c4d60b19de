"""The module paths and names of seele_agents before it was grouped by concept, still usable.

``import seele_agents.train`` (and every other old path) gives the module at its new home,
:mod:`seele_agents.training.loop`, with a :class:`DeprecationWarning` naming it. The old names
will go in a later release. Nothing is imported until an old path is asked for. A name that
left a module is forwarded by that module's ``__getattr__`` (:func:`forwarding`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

MOVED = {
    "advantages": "algos.advantages",
    "returns": "algos.returns",
    "losses": "algos.losses",
    "learner": "algos.learner",
    "grpo": "algos.grpo",
    "ppo": "algos.ppo",
    "reinforcepp": "algos.reinforcepp",
    "vllm_generation": "generation.vllm",
    "rollout": "training.rollout",
    "train": "training.loop",
    "sft": "training.sft",
    "checkpoint": "training.checkpoint",
    "distributed": "training.distributed",
    "tracking": "training.tracking",
    "samples": "training.samples",
    "plots": "training.plots",
    "tiny": "models.tiny",
    "eval_command": "evaluation.command",
    "speed": "bench.speed",
    "scaling": "bench.scaling",
    "parity": "bench.parity",
    "trl_adapter": "integrations.trl",
}
"""Old module name -> new module name, both under ``seele_agents``."""


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``seele_agents.<old>`` and loads it as the module at its new path."""

    def __init__(self) -> None:
        self.specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        package, _, name = fullname.rpartition(".")
        if package != "seele_agents" or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = f"seele_agents.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(
            f"{spec.name} is now {new}; import it from there (the old path goes in a later "
            "release).",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self.specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system has put the old path's spec on the module: give it back its own.
        module.__spec__ = self.specs.pop(module.__spec__.name)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())


def forwarding(
    owner: str,
    *,
    moved: Mapping[str, str] | None = None,
    into: str | None = None,
    submodules: tuple[str, ...] = (),
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that left module ``owner``: each read warns
    (:class:`DeprecationWarning`) and returns the name at its new home.

    Args:
        owner: The module's ``__name__``.
        moved: ``{old name: "new.module:new_name"}``.
        into: A module whose every other name ``owner.<name>`` forwards to (a module that
            became a package: its old names now live in this one).
        submodules: Names of ``owner``'s submodules, never forwarded (the import system loads
            them when they are not imported yet).
    """

    def __getattr__(name: str) -> Any:
        target = (moved or {}).get(name)
        forwarded = into is not None and not name.startswith("__") and name not in submodules
        if target is None and forwarded and hasattr(importlib.import_module(into), name):
            target = f"{into}:{name}"
        if target is None:
            raise AttributeError(f"module {owner!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        warnings.warn(
            f"{owner}.{name} is now {module}.{attribute}; import it from there (the old name "
            "goes in a later release).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), attribute)

    return __getattr__
