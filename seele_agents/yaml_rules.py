"""YAML as people mean it in a config: only true/false are bools, and 1e-4 is a float.

PyYAML follows YAML 1.1, where yes/no/on/off are bools (so ``log.wandb=yes`` would pass for a
flag) and a float needs a dot (``lr: 1e-4`` would be a string). Both rules are replaced here, for
config files, ``key=value`` overrides and the ``config.yaml`` a run writes. Imported only when
YAML is read or written (pyyaml comes with the ``train`` extra; ``seele --help`` needs none).

Example:
    >>> load("{lr: 1e-4, wandb: yes, tag: 1e5x}")
    {'lr': 0.0001, 'wandb': 'yes', 'tag': '1e5x'}
    >>> dump({"name": "1e5"})
    "name: '1e5'\\n"
"""

from __future__ import annotations

import re
from typing import Any

import yaml

YAMLError = yaml.YAMLError


class _Loader(yaml.SafeLoader):
    """YAML as people mean it in a config: only true/false are bools, and 1e-4 is a float.

    PyYAML follows YAML 1.1, where yes/no/on/off are bools (so `log.wandb=yes` would pass for a
    flag) and a float needs a dot (`lr: 1e-4` would be a string). Both rules are replaced here.
    """


class _Dumper(yaml.SafeDumper):
    """Writes what :class:`_Loader` reads back: text such as "1e5" is quoted."""


for _cls in (_Loader, _Dumper):
    _cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":bool", ":float"))]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )


def load(text: str) -> Any:
    """The YAML document ``text`` read with these rules (safe: builds no arbitrary objects)."""
    return yaml.load(text, Loader=_Loader)


def dump(data: Any) -> str:
    """``data`` as YAML that :func:`load` reads back the same; keys keep their order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
