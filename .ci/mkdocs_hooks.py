"""mkdocs hooks for the docs site (.ci/mkdocs.yml): the README as home, an API page per module.

The README stays the single front page: it is added as ``index.md`` with its ``docs/...`` links
made relative to the docs folder. Relative links from the README or a docs page to files
elsewhere in the repository (``examples/...``, ``../seele_env/...``) are pointed at the
repository when the file exists; a link to a missing file is left as it is, so ``--strict``
fails on it. The API reference lists every public module of ``seele_env`` and ``seele_agents``
found on disk, so a new module gets its page without an edit here; mkdocstrings renders each
from its docstrings (Google style).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ("seele_env", "seele_agents")
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def _modules(package: str) -> list[str]:
    """Dotted names of the package and its public modules and subpackages, in reading order."""
    names = [package]
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1 and not any(part.startswith("_") for part in parts):
            names.append(".".join(parts))
    return sorted(names, key=lambda name: (name.split("."), name))


def _api_page(module: str) -> str:
    return f"api/{module}.md"


def on_config(config: Any) -> Any:
    """Append the API reference section to the nav."""
    reference = [
        {package: [{module: _api_page(module)} for module in _modules(package)]}
        for package in PACKAGES
    ]
    config.nav.append({"API reference": reference})
    return config


def _repo_link(match: re.Match[str], base: Path, repo_url: str) -> str:
    """The link as the site needs it; ``base`` is the folder of the page it is written in."""
    target, hash_, anchor = match.group(1).partition("#")
    path = (base / target).resolve()
    if path.is_relative_to(DOCS):
        if base != ROOT:  # a docs page's link to another: mkdocs checks it as it is
            return match[0]
        return f"]({path.relative_to(DOCS).as_posix()}{hash_}{anchor})"  # the README's docs/...
    if path.is_relative_to(ROOT) and path.exists():
        return f"]({repo_url}/blob/main/{path.relative_to(ROOT).as_posix()}{hash_}{anchor})"
    return match[0]


def on_files(files: Files, config: Any) -> Files:
    """Add the home page (the README) and the API reference pages."""
    repo_url = config.repo_url.rstrip("/")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    home = LINK.sub(lambda match: _repo_link(match, ROOT, repo_url), readme)
    files.append(File.generated(config, "index.md", content=home))
    for package in PACKAGES:
        for module in _modules(package):
            # A package's page shows its docstring; its modules have pages of their own.
            is_package = (ROOT.joinpath(*module.split(".")) / "__init__.py").is_file()
            members = "\n    options:\n      members: false" if is_package else ""
            content = f"::: {module}{members}\n"
            files.append(File.generated(config, _api_page(module), content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point a docs page's links to repository files outside the docs folder at the repository."""
    if page.file.generated_by or page.file.src_uri == "index.md":
        return markdown
    base = (DOCS / page.file.src_uri).parent
    repo_url = config.repo_url.rstrip("/")
    return LINK.sub(lambda match: _repo_link(match, base, repo_url), markdown)
