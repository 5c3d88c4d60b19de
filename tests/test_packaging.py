"""The package metadata: distribution name, version, licence, URLs and classifiers."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import seele_agents
import seele_env

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "seele-rl"


@pytest.fixture(scope="module")
def project() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_version_is_the_installed_distributions() -> None:
    installed = metadata.version(DISTRIBUTION)
    assert seele_env.__version__ == installed
    assert seele_agents.__version__ == installed
    assert re.fullmatch(r"\d+\.\d+\.\d+", installed), installed


def test_the_installed_metadata_is_this_trees(project: dict) -> None:
    # An install made before a change to pyproject.toml carries stale metadata: reinstall.
    assert project["name"] == DISTRIBUTION
    assert metadata.version(DISTRIBUTION) == project["version"]
    assert metadata.metadata(DISTRIBUTION)["License-Expression"] == project["license"]


def test_version_without_an_installed_distribution() -> None:
    code = (
        "from importlib import metadata\n"
        "def missing(name):\n"
        "    raise metadata.PackageNotFoundError(name)\n"
        "metadata.version = missing\n"
        "import seele_env, seele_agents\n"
        "print(seele_env.__version__, seele_agents.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0+unknown", "0+unknown"]


def test_license_is_an_spdx_expression_with_its_text(project: dict) -> None:
    assert project["license"] == "MIT"
    assert project["license-files"] == ["docs/LICENSE"]
    text = (ROOT / "docs" / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} \S", text, re.MULTILINE)
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    # PEP 639: the expression replaces licence classifiers (setuptools refuses both).
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]


def test_project_urls(project: dict) -> None:
    urls = project["urls"]
    for key in ("Homepage", "Documentation", "Repository", "Issues", "Paper"):
        assert urls.get(key, "").startswith("https://"), key
    assert urls["Issues"] == urls["Repository"] + "/issues"
    assert urls["Paper"] == "https://arxiv.org/abs/2509.06923"


def test_classifiers_match_requires_python(project: dict) -> None:
    classifiers = project["classifiers"]
    minors = sorted(
        int(m.group(1))
        for c in classifiers
        if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
    )
    assert minors == [10, 11, 12]
    assert project["requires-python"] == f">=3.{minors[0]}"
    for wanted in (
        "Operating System :: OS Independent",
        "Intended Audience :: Science/Research",
        "Typing :: Typed",
    ):
        assert wanted in classifiers
    assert sum(c.startswith("Development Status :: ") for c in classifiers) == 1


def test_classifiers_are_known_to_the_index(project: dict) -> None:
    trove = pytest.importorskip("trove_classifiers", reason="trove-classifiers is not installed")
    assert [c for c in project["classifiers"] if c not in trove.classifiers] == []


def test_extras_name_this_distribution(project: dict) -> None:
    # Extras that pull in other extras must name the distribution, or pip fetches another one.
    own = [
        requirement
        for extra in project["optional-dependencies"].values()
        for requirement in extra
        if requirement.startswith("seele")
    ]
    assert own, "no extra refers to another"
    for requirement in own:
        assert re.fullmatch(rf"{DISTRIBUTION}\[[a-z,]+\]", requirement), requirement


def test_seele_help_needs_only_the_base_dependencies() -> None:
    """What CI's clean-wheel step runs: the base install has neither torch nor pyyaml (both come
    with the ``train`` extra), and ``seele --help`` (every command's flags) must not need them."""
    code = (
        "import sys\n"
        "for name in ('torch', 'yaml', 'transformers'):\n"
        "    sys.modules[name] = None  # importing it now fails, as where it is not installed\n"
        "from seele_agents.cli import main\n"
        "for command in ([], ['eval'], ['bench'], ['bench', 'speed'], ['bench', 'scaling'],\n"
        "                ['train'], ['export']):\n"
        "    try:\n"
        "        main([*command, '--help'])\n"
        "    except SystemExit as stop:\n"
        "        assert stop.code == 0, (command, stop.code)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
