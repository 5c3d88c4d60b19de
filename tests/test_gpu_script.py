"""examples/gpu: the offline GPU script and the wheels it carries.

The GPU machine has torch and transformers but no network, so ``run.sh`` installs what it lacks
from the wheels ``fetch_wheels.sh`` downloads (``requirements.txt``; ``requirements-bare.txt``
for a machine with only torch and transformers). These tests make a new dependency fail here
instead of on the GPU: every third-party import of the code the scripts run must be on that
machine already, in a requirements file, or named below as not needed there, with the reason.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GPU = ROOT / "examples" / "gpu"
SCRIPTS = [GPU / "run.sh", GPU / "fetch_wheels.sh"]

# Where run.sh's commands start: `seele bench curricula`, `seele eval`, `seele train`, and the
# helpers; seele_env whole (the env, the curricula, the verifier's worker process).
ENTRY_MODULES = [
    "seele_agents.cli",
    "seele_agents.bench.curricula",
    "seele_agents.training.loop",
    "seele_agents.evaluation.command",
    "seele_env",
]
HELPERS = [GPU / "tools.py"]

# Distributions on the GPU machine (/work/.library/device/KINDS.md, "Python packages already
# there"), as far as this project's code path reaches them.
ON_GPU = {
    "torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "numpy", "scipy",
    "sympy", "mpmath", "matplotlib", "pyyaml", "tqdm", "cloudpickle", "typing-extensions",
    "packaging", "filelock", "fsspec", "jinja2", "markupsafe", "networkx", "regex", "requests",
    "pillow", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil",
    "six", "setuptools", "peft", "accelerate", "psutil",
}  # fmt: skip

# Imported somewhere on those paths, but only for features run.sh does not use.
NOT_NEEDED = {
    "peft": "LoRA (model.lora_rank > 0); also already on the GPU machine",
    "vllm": "generation.backend=vllm only",
    "trl": "seele bench speed / parity and the TRL adapter only",
    "datasets": "hub datasets and datasets.Dataset inputs; run.sh reads local JSONL files",
    "pyarrow": "Parquet data files; run.sh reads local JSONL files",
}


def _dist(name: str) -> str:
    """A distribution name in its normalised form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(path: Path) -> dict[str, str]:
    """``{normalised name: pinned version}`` of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_dist(name)] = version
    return pins


CARRIED = _requirements(GPU / "requirements.txt")
CARRIED_BARE = _requirements(GPU / "requirements-bare.txt")


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] not in ("seele_env", "seele_agents"):
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of everything ``path`` imports, at any depth (functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # submodules
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party modules reachable from :data:`ENTRY_MODULES` and the helpers,
    following this project's modules transitively: ``{module: {files importing it}}``."""
    found: dict[str, set[str]] = {}
    todo = [(m, _module_file(m)) for m in ENTRY_MODULES]
    todo += [("tools", path) for path in HELPERS]
    # seele_env is used whole: the env imports its curricula and loaders lazily, by name.
    todo += [
        (".".join(p.relative_to(ROOT).with_suffix("").parts), p)
        for p in (ROOT / "seele_env").rglob("*.py")
    ]
    seen: set[Path] = set()
    while todo:
        module, path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for name in _imports(path, package):
            top = name.split(".")[0]
            if top in ("seele_env", "seele_agents"):
                todo.append((name, _module_file(name)))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()  # scans every installed distribution: once


def _distributions_of(module: str) -> list[str]:
    return [_dist(d) for d in _packages_distributions().get(module, [])]


def test_scripts_parse() -> None:
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_pass_shellcheck() -> None:
    subprocess.run(["shellcheck", *map(str, SCRIPTS)], check=True)


def test_every_import_is_on_the_gpu_machine_or_carried() -> None:
    imports = third_party_imports()
    # The walk must see the imports it exists for, or it checks nothing.
    assert {"gymnasium", "math_verify", "torch", "transformers", "scipy", "yaml"} <= set(imports)
    missing = {}
    for module, files in sorted(imports.items()):
        if module in NOT_NEEDED:
            continue
        dists = _distributions_of(module)
        assert dists, f"{module} (imported by {sorted(files)}) is not installed here"
        if not any(d in ON_GPU or d in CARRIED for d in dists):
            missing[module] = sorted(files)
    assert not missing, (
        f"imported but neither on the GPU machine nor in examples/gpu/requirements.txt: {missing}"
    )


def _pinned_requires(dist: str) -> list[str] | None:
    """What the pinned version of ``dist`` declares, when that is not the installed version:
    read from its downloaded wheel; ``[]`` (a leaf) when the wheel is not downloaded here.
    ``None`` when ``dist`` is unpinned or installed at its pin (its metadata is the pin's)."""
    import zipfile

    pin = {**CARRIED, **CARRIED_BARE}.get(dist)
    with contextlib.suppress(metadata.PackageNotFoundError):
        if pin is None or _dist(metadata.version(dist)) == _dist(pin):
            return None
    for wheel in (GPU / "wheels").glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if _dist(name) == dist and version == pin:
            with zipfile.ZipFile(wheel) as archive:
                meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
                text = archive.read(meta).decode()
            return [line[len("Requires-Dist: ") :] for line in text.splitlines()
                    if line.startswith("Requires-Dist: ")]  # fmt: skip
    return []


def _requires(dist: str) -> list[str]:
    """Names of what ``dist`` needs (no extras; markers evaluated here). A pinned distribution
    is read at its pin: the machine running this may hold another version (CI resolved
    python-dateutil 4.0, which needs tzdata; the pin, 2.9.0.post0, needs only six)."""
    from packaging.requirements import Requirement

    needs = []
    texts = _pinned_requires(dist)
    for text in metadata.requires(dist) or [] if texts is None else texts:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needs.append(_dist(req.name))
    return needs


def _closure(names: list[str], stop: set[str] = frozenset()) -> set[str]:
    done: set[str] = set()
    todo = [_dist(n) for n in names]
    while todo:
        name = todo.pop()
        if name in done or name in stop:
            continue
        done.add(name)
        with contextlib.suppress(metadata.PackageNotFoundError):  # not installed: a leaf
            todo += _requires(name)
    return done


def _project_requirements() -> list[str]:
    """This project's dependencies and its ``train`` extra, as distribution names."""
    from packaging.requirements import Requirement

    project = metadata.metadata("seele-rl")
    names = []
    for text in project.get_all("Requires-Dist") or []:
        req, marker = Requirement(text), Requirement(text).marker
        wanted = marker is None or any(marker.evaluate({"extra": e}) for e in ("", "train"))
        if wanted and req.name != "seele-rl":
            names.append(req.name)
    return names


def test_the_dependency_closure_is_covered() -> None:
    """What the package needs, transitively: on the GPU machine or carried; and, for the CPU
    test of run.sh, brought by torch + transformers or in requirements-bare.txt."""
    needed = _closure(_project_requirements())
    assert {"gymnasium", "math-verify", "latex2sympy2-extended", "scipy"} <= needed
    bare_box = _closure(["torch", "transformers"])  # the GPU machine has these too
    # What the GPU machine has brings its own dependencies, at the versions it has there.
    on_gpu = _closure(_project_requirements(), stop=ON_GPU)
    beyond = on_gpu - bare_box - ON_GPU - set(CARRIED)
    assert not beyond, f"neither on the GPU machine nor carried: {sorted(beyond)}"
    lacking = needed - bare_box - set(CARRIED) - set(CARRIED_BARE)
    assert not lacking, f"a torch + transformers machine lacks {sorted(lacking)}"


def test_pins_satisfy_the_project_and_each_other() -> None:
    from packaging.requirements import Requirement

    pins = {**CARRIED, **CARRIED_BARE}
    texts = list(metadata.metadata("seele-rl").get_all("Requires-Dist") or [])
    for dist in pins:
        with contextlib.suppress(metadata.PackageNotFoundError):
            texts += metadata.requires(dist) or []
    for text in texts:
        req = Requirement(text)
        name = _dist(req.name)
        if name in pins and (req.marker is None or req.marker.evaluate({"extra": ""})):
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"{name}=={pins[name]} does not satisfy {text!r}"
            )
    # math-verify's antlr4 extra, which run.sh installs by the runtime's pin.
    assert pins["antlr4-python3-runtime"] == "4.13.2"


def test_downloaded_wheels_match_the_pins() -> None:
    folder = GPU / "wheels"
    if not folder.is_dir():
        pytest.skip("examples/gpu/wheels is not downloaded (bash examples/gpu/fetch_wheels.sh)")
    found = {}
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        assert _dist(name) not in found, f"two versions of {name} in {folder}"
        found[_dist(name)] = version
    for name, version in CARRIED.items():
        assert found.get(name) == version, f"{name}=={version} is not in {folder}"
    for name, version in found.items():
        assert {**CARRIED, **CARRIED_BARE}.get(name) == version, f"{name} {version} is unpinned"


@pytest.mark.slow  # torch, transformers and a tokenizer trained: ~20 s on a busy 2-core machine
def test_build_model_saves_a_loadable_larger_tiny_llama(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path / "model"
    subprocess.run(
        [sys.executable, str(GPU / "tools.py"), "build-model", "--out", str(out),
         "--hidden", "32", "--layers", "3", "--heads", "4"],
        check=True, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    from seele_agents.models import load_model
    from seele_agents.models.tiny import build_tiny

    model, tokenizer = load_model(str(out), device="cpu")
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 3
    assert model.config.intermediate_size == 96
    _, tiny_tokenizer = build_tiny(seed=0)  # the demo's tokenizer: one vocabulary for both
    text = "Problem: Compute 78 - 5 + 3.\nSolution:\n"
    assert tokenizer(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    assert tokenizer.eos_token_id == model.config.eos_token_id != tokenizer.pad_token_id


def test_rounds_prints_each_rounds_accuracy(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        '{"step": 0, "eval/accuracy": 0.25}\n'
        '{"step": 1, "reward/accuracy": 0.5, "curriculum/hint_rate": 0.4, '
        '"curriculum/accuracy_round1": 0.125, "curriculum/accuracy_round2": 0.75}\n'
        '{"step": 1, "eval/accuracy": 0.5}\n'
    )
    result = subprocess.run(
        [sys.executable, str(GPU / "tools.py"), "rounds", str(metrics)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["step", "reward", "hint", "round1", "round2"]
    assert lines[1].split() == ["1", "0.500", "0.400", "0.125", "0.750"]
    assert "0.250 at step 0 -> 0.500 at step 1" in lines[2]
