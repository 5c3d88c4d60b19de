"""Every docstring example in seele_env and seele_agents runs and gives what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest


def _modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    return sorted(
        name
        for _, name, _ in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
        if not name.endswith("__main__")
    )


try:  # seele_agents needs torch (the train extra); without it only seele_env's run
    import torch  # noqa: F401

    AGENT_MODULES = [m for m in _modules("seele_agents") if m != "seele_agents.generation.vllm"]
except ImportError:
    AGENT_MODULES = []
MODULES = _modules("seele_env") + AGENT_MODULES
RESULTS: dict[str, doctest.TestResults] = {}


def _run(name: str) -> doctest.TestResults:
    if name not in RESULTS:
        module = importlib.import_module(name)
        RESULTS[name] = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    return RESULTS[name]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    assert _run(name).failed == 0, f"{_run(name)} in {name}"


@pytest.mark.parametrize(
    "name",
    [
        "curricula",
        "curricula.base",
        "env",
        "hints",
        "irt",
        "latex",
        "procedural",
        "simulate",
        "vector",
        "verify",
    ],
)
def test_the_main_modules_carry_examples(name: str) -> None:
    assert _run(f"seele_env.{name}").attempted > 0


@pytest.mark.skipif(not AGENT_MODULES, reason="seele_agents needs torch")
@pytest.mark.parametrize(
    "name",
    ["algos.advantages", "training.checkpoint", "config", "options", "generation.transformers",
     "algos.grpo", "algos.losses", "algos.registry", "models.loading", "training.plots",
     "training.rollout", "training.sft", "models.tiny", "training.tracking", "files"],
)  # fmt: skip
def test_the_agent_modules_carry_examples(name: str) -> None:
    assert _run(f"seele_agents.{name}").attempted > 0
