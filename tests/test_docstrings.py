"""Every docstring example in seele_env runs and gives what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import seele_env

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(seele_env.__path__, prefix="seele_env.")
    if not name.endswith("__main__")
)
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
