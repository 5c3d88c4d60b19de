"""The package layout: no import cycles, and the module paths from before the grouping still work.

``seele_agents`` is grouped by concept (``algos``, ``generation``, ``training``, ``models``,
``evaluation``, ``bench``, ``integrations``); the old flat paths import the module at its new
home with a :class:`DeprecationWarning` (``seele_agents._moved``).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from seele_agents._moved import MOVED

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("seele_env", "seele_agents")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _top_level_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project's modules ``path`` imports when it is imported (module body only: imports
    inside functions and under ``if TYPE_CHECKING:`` run later or never)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known and name != module}


def test_no_module_imports_itself_back() -> None:
    modules = _modules()
    graph = {m: _top_level_imports(p, m, set(modules)) for m, p in modules.items()}
    # The walk must see the edges it exists for, or it checks nothing.
    assert "seele_agents.training.sft" in graph["seele_agents.training.build"]
    assert "seele_env.hints" in graph["seele_env.env"]
    cycles = []

    def visit(module: str, stack: list[str], done: set[str]) -> None:
        for nxt in sorted(graph[module]):
            if nxt in stack:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*stack, nxt], done)
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module], done)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_imports_the_new_module_and_says_where(old: str) -> None:
    new = f"seele_agents.{MOVED[old]}"
    code = (
        "import importlib, warnings\n"
        "warnings.simplefilter('error')\n"
        "try:\n"
        f"    importlib.import_module('seele_agents.{old}')\n"
        "except DeprecationWarning as w:\n"
        "    print(w)\n"
        "warnings.simplefilter('ignore')\n"
        f"old = importlib.import_module('seele_agents.{old}')\n"
        f"new = importlib.import_module('{new}')\n"
        "print(old is new, new.__spec__.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    warning, identity = out.stdout.strip().splitlines()
    assert warning.startswith(f"seele_agents.{old} is now {new}; import it from there")
    assert identity == f"True {new}"  # the same module object, its own spec kept


def test_moved_names_forward_with_a_warning() -> None:
    pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    from seele_agents.bench import curricula
    from seele_agents.evaluation import metrics
    from seele_agents.training import build, loop, sft

    cases = [
        (loop, "make_learner", build.make_learner, "seele_agents.training.build.make_learner"),
        (loop, "warm_up", sft.warm_up, "seele_agents.training.sft.warm_up"),
        (importlib.import_module("seele_agents.bench"), "run", curricula.run,
         "seele_agents.bench.curricula.run"),
        (importlib.import_module("seele_agents.evaluation"), "pass_at_k", metrics.pass_at_k,
         "seele_agents.evaluation.metrics.pass_at_k"),
    ]  # fmt: skip
    for module, name, expected, where in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert getattr(module, name) is expected
        messages = [str(w.message) for w in caught]
        assert any(where in message for message in messages), (name, messages)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = loop.nothing


def test_the_top_level_names_are_unchanged() -> None:
    import seele_agents
    import seele_env

    assert seele_agents.__version__ == seele_env.__version__
    for name in ("generation", "models"):  # packages whose public names stay importable
        module = importlib.import_module(f"seele_agents.{name}")
        assert set(module.__all__) <= set(dir(module))
