"""A griffe extension for the docs site: read our reST-flavoured docstrings as Markdown.

Two habits of our Google-style docstrings render badly as they stand, so each docstring is
rewritten before griffe parses it (the source is untouched):

* doctests are headed ``Example:``, which griffe reads as a plain admonition, so the doctest
  lines would be rendered as Markdown (``[0, 1]`` becomes a broken cross-reference); headed
  ``Examples:`` they become code blocks;
* Sphinx roles such as ``:func:`policy_loss``` would show the role; only the code is kept.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

EXAMPLE_HEADER = re.compile(r"^Example:[ \t]*$", re.MULTILINE)
SPHINX_ROLE = re.compile(r":(?:mod|func|class|meth|attr|data|obj|exc):(`[^`]+`)")


class MarkdownDocstrings(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` and drop Sphinx roles."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = EXAMPLE_HEADER.sub("Examples:", obj.docstring.value)
            obj.docstring.value = SPHINX_ROLE.sub(r"\1", value)
