"""The settings system every command shares: typed, documented dataclass fields.

A setting is a dataclass field made with :func:`option` (its default, one sentence of help, its
choices, its bounds); a group of them is a :class:`Section`, checked whenever one is created.
:func:`config_from_dict` converts plain data (YAML, overrides) into sections with type checks
(a bool must be ``true``/``false``, an int may not be ``2.5``, an unknown key gets a "did you
mean"), raising :class:`ConfigError` s that name the key path, the bad value and where it came
from. A command's settings are an :class:`Options` section: :func:`add_options` makes its
argparse flags, :func:`options_from_args` builds it from the parsed flags and
:func:`options_reference` documents it. ``seele train``'s own sections, and how they are loaded
from a file, are in :mod:`seele_agents.config`.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo(Section):
    ...     steps: int = option(10, "Training steps.", ge=1)
    >>> config_from_dict(Demo, {"steps": "3"})
    Traceback (most recent call last):
    ...
    seele_agents.options.ConfigError: steps: expected an integer, got '3' (str)
    >>> config_from_dict(Demo, {"steps": 3}).steps
    3
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import math
import operator
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


# Bounds a numeric field may declare in its metadata, with how they read in messages.
_BOUNDS = {
    "ge": (operator.ge, ">="),
    "gt": (operator.gt, ">"),
    "le": (operator.le, "<="),
    "lt": (operator.lt, "<"),
}


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range; or a file is bad.

    Attributes:
        message: What is wrong and how to fix it.
        key: The dotted key path of the bad value (``algo.epsilon_low``); empty for a whole file.
        source: Where the value came from (a file name, an override); empty when unknown.
        value: The bad value, where one is to blame.
        rule: What the value breaks, to follow ``key=value`` (``must be >= 1 (...)``); empty when
            the message says it all.
    """

    def __init__(
        self, message: str, key: str = "", source: str = "", *, value: Any = None, rule: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.key, self.source = message, key, source
        self.value, self.rule = value, rule

    def __str__(self) -> str:
        return ": ".join(part for part in (self.source, self.key, self.message) if part)

    def within(self, prefix: str) -> ConfigError:
        """The same error, its key seen from the section that holds ``prefix``."""
        return self._with(key=_join(prefix, self.key))

    def from_source(self, source: str) -> ConfigError:
        """The same error, attributed to ``source`` unless it already names one."""
        return self._with(source=self.source or source)

    def as_assignment(self) -> str:
        """The error as a command reports it: ``samples=-1 must be >= 0 (...)``."""
        if not (self.key and self.rule):
            return str(self)
        return f"{self.key}={self.value!r} {self.rule}"

    def _with(self, **changes: str) -> ConfigError:
        parts = {"message": self.message, "key": self.key, "source": self.source, **changes}
        return ConfigError(**parts, value=self.value, rule=self.rule)


REQUIRED: Any = dataclasses.MISSING
"""The default of an option that has none: it must be given."""


def option(
    default: Any,
    help: str,
    *,
    choices: Iterable[Any] | None = None,
    cli: Mapping[str, Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    **bounds: Any,
) -> Any:
    """A dataclass field documented by ``help`` (one sentence, units included).

    Args:
        default: The default (:data:`REQUIRED`: none); a list or dict is copied for every
            instance.
        help: What the field means, in one sentence.
        choices: The allowed values, when there is a fixed set; a mapping (a registry such as
            :data:`~seele_agents.algos.registry.LEARNERS`) allows its keys at the time of the check.
        cli: For a command's options (:func:`add_options`): ``flags`` (default ``--name``)
            and any other keyword of ``add_argument`` (``metavar``, ``nargs``, ``action``).
        parse: Turns the command line's text into the value (``"0,0.5"`` -> ``[0.0, 0.5]``).
        **bounds: ``ge``, ``gt``, ``le``, ``lt``: limits of a numeric value (``None`` passes).
    """
    metadata: dict[str, Any] = {"help": help, **bounds}
    if isinstance(choices, Mapping):  # a registry: names registered later are valid too
        metadata["choices"] = choices.keys()
    elif choices is not None:
        metadata["choices"] = tuple(choices)
    if cli is not None:
        metadata["cli"] = dict(cli)
    if parse is not None:
        metadata["parse"] = parse
    if default is REQUIRED:
        return field(metadata=metadata)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


class Section:
    """Base of the configuration sections: every field is checked when an instance is created.

    :meth:`validate` checks types (normalising, e.g. an int given for a float), choices and bounds,
    then the section's own rules in :meth:`check`. Call it again after changing fields by hand.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field and the section's rules; raise :class:`ConfigError` on the first
        breach."""
        hints = type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = convert(getattr(self, f.name), hints[f.name], f.name)
            choices = f.metadata.get("choices")
            if choices is not None and value not in choices:
                close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                rule = f"is not one of {list(choices)}.{hint}"
                raise ConfigError(f"{value!r} {rule}", f.name, value=value, rule=rule)
            for bound, (test, symbol) in _BOUNDS.items():
                limit = f.metadata.get(bound)
                if limit is not None and isinstance(value, (int, float)) and not test(value, limit):
                    help = f.metadata["help"].rstrip(".")
                    require(False, f.name, value, f"must be {symbol} {limit} ({help}).")
            if isinstance(value, Section):
                try:
                    value.validate()
                except ConfigError as error:
                    raise error.within(f.name) from None
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """The section's own rules, beyond types, choices and bounds."""


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` and ``value`` unless ``ok``; ``rule``: what the
    value must be, or the fix (a section's :meth:`~Section.check` uses it)."""
    if not ok:
        raise ConfigError(f"got {value!r}; {rule}", key, value=value, rule=rule)


# How a type reads in error messages: (one value, several values).
_WORDS = {
    bool: ("true or false", "bools"),
    int: ("an integer", "integers"),
    float: ("a float", "floats"),
    str: ("a string", "strings"),
    type(None): ("null", "nulls"),
}


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved type of every field of the dataclass ``cls``."""
    return typing.get_type_hints(cls)


def _join(prefix: str, key: str) -> str:
    if not prefix or not key:
        return prefix or key
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def is_union(tp: Any) -> bool:
    """Whether ``tp`` is ``A | B`` (or ``Optional[A]``)."""
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _describe(tp: Any) -> str:
    """``tp`` in words: ``int | list[int]`` -> "an integer or a list of integers"."""
    if is_union(tp):
        return " or ".join(_describe(arm) for arm in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        return "a list of " + _WORDS.get(item, ("", "values"))[1]
    if typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return _WORDS.get(tp, (getattr(tp, "__name__", str(tp)),))[0]


def _label(tp: Any) -> str:
    """``tp`` as written in the dataclass: ``int | list[int]``, ``dict[str, Any]``."""
    if is_union(tp):
        return " | ".join(_label(arm) for arm in typing.get_args(tp))
    if typing.get_origin(tp) in (list, dict):
        args = ", ".join(_label(arg) for arg in typing.get_args(tp))
        return f"{typing.get_origin(tp).__name__}[{args}]"
    return "None" if tp is type(None) else "Any" if tp is Any else tp.__name__


def convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the type hint ``tp`` (ints widened to floats, mappings built into
    dataclasses); ``key`` is its path, for errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if is_union(tp):
        return _convert_union(value, tp, key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _from_dict(tp, value, key)  # type: ignore[arg-type]
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [convert(item, args[0], f"{key}[{i}]") for i, item in enumerate(value)]
    elif origin is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return {k: copy.deepcopy(convert(v, args[1], _join(key, k))) for k, v in value.items()}
    elif tp is bool:
        if isinstance(value, bool):  # not 1/0 or "yes": a typo should not pass for a flag
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                message = f"expected a finite float, got {value!r}"
                raise ConfigError(message, key, value=value, rule="is not finite")
            return float(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _wrong_type(value, tp, key)


def _wrong_type(value: Any, tp: Any, key: str) -> ConfigError:
    message = f"expected {_describe(tp)}, got {value!r} ({type(value).__name__})"
    return ConfigError(message, key, value=value, rule=f"is not {_describe(tp)}")


def _convert_union(value: Any, tp: Any, key: str) -> Any:
    arms = typing.get_args(tp)
    if value is None and type(None) in arms:
        return None
    # When the value has the shape of one arm (a list for `list[int]`), that arm's error is the
    # precise one ("env.difficulty[1]: expected an integer").
    precise = None
    for arm in arms:
        try:
            return convert(value, arm, key)
        except ConfigError as error:
            container = typing.get_origin(arm) or (dict if dataclasses.is_dataclass(arm) else None)
            if (container is list and isinstance(value, (list, tuple))) or (
                container is dict and isinstance(value, Mapping)
            ):
                precise = precise or error
    if precise is not None:
        raise precise
    raise _wrong_type(value, tp, key)


def _unknown_key(prefix: str, key: Any, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" Did you mean {_join(prefix, close[0])!r}?" if close else ""
    where = f"of {prefix}" if prefix else "at the top level"
    return ConfigError(
        f"unknown key.{hint} Keys {where}: {', '.join(known)}.", _join(prefix, str(key))
    )


def _from_dict(cls: type[T], data: Any, prefix: str) -> T:
    if not isinstance(data, Mapping):
        what = f"{prefix} settings" if prefix else "settings"
        raise ConfigError(
            f"expected a mapping of {what}, got {data!r} ({type(data).__name__})", prefix
        )
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(prefix, key, names)
        kwargs[key] = convert(value, hints[key], _join(prefix, key))
    try:
        return cls(**kwargs)
    except ConfigError as error:  # from the section's own checks, keyed from inside it
        raise error.within(prefix) from None


def config_from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "") -> T:
    """Build the dataclass ``cls`` and its nested sections from plain data, checking every value.

    Missing keys keep their defaults; each section runs its checks once built.

    Args:
        cls: A dataclass, usually :class:`TrainConfig`.
        data: Nested mappings, e.g. read from YAML.
        source: Where ``data`` came from (a file name), for error messages.

    Raises:
        ConfigError: An unknown key, a value of the wrong type or out of range.
    """
    try:
        return _from_dict(cls, data, "")
    except ConfigError as error:
        raise error.from_source(source) from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """``cfg`` as plain nested dicts and lists, safe for JSON and YAML."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``cfg`` to ``path`` as YAML (folders created); :func:`load_config` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from seele_agents import yaml_rules  # pyyaml: the train extra; `seele --help` needs none

    text = yaml_rules.dump(config_to_dict(cfg))
    path.write_text(text, encoding="utf-8")
    return path


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"algo.beta=0.01"`` into ``(["algo", "beta"], 0.01)``, reading the value as YAML.

    So ``env.difficulty=[1, 3]``, ``model.revision=null``, ``log.wandb=true`` and ``optim.lr=1e-5``
    work (only true/false are bools); quote text that YAML would read otherwise:
    ``env.system_prompt='Answer: briefly'``.

    Raises:
        ConfigError: No ``=``, an empty key part or value, or a value that is not valid YAML.
    """
    source = f"override {text!r}"
    key, sep, raw = text.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError("write KEY=VALUE with a dotted key, e.g. algo.beta=0.01.", source=source)
    if not raw.strip():
        raise ConfigError("no value after '='; write KEY=null for none.", source=source)
    from seele_agents import yaml_rules

    try:
        value = yaml_rules.load(raw)
    except yaml_rules.YAMLError as error:
        problem = " ".join(str(error).split())
        message = f"the value {raw!r} is not valid YAML ({problem}); quote text values."
        raise ConfigError(message, source=source) from None
    return keys, value


def deep_set(data: dict[str, Any], cls: type, keys: list[str], value: Any) -> None:
    """``data[k1][k2]... = value``, after checking the key path against the dataclass ``cls``."""
    node, tp = data, cls
    for depth, part in enumerate(keys):
        here = ".".join(keys[:depth])
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                raise _unknown_key(here, part, names)
            tp = type_hints(tp)[part]
        elif tp is Any or typing.get_origin(tp) is dict:  # free keys: curriculum.options.*
            tp = Any if tp is Any else typing.get_args(tp)[1]
        else:
            raise ConfigError(f"is {_describe(tp)}, which has no key {part!r}.", here)
        if depth == len(keys) - 1:
            node[part] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"is {child!r}, not a mapping, so it has no key {keys[depth + 1]!r}.",
                _join(here, part),
            )
        node = child


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (``{}`` when empty); a :class:`ConfigError` else."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"the config file {what}; check the path.", source=str(path))
    from seele_agents import yaml_rules

    try:
        data = yaml_rules.load(path.read_text(encoding="utf-8"))
    except yaml_rules.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}", source=str(path)) from None
    if data is None:  # an empty file: every default
        return {}
    if not isinstance(data, dict):
        message = f"expected a mapping such as 'algo: {{beta: 0.01}}', got {type(data).__name__}."
        raise ConfigError(message, source=str(path))
    return data


def reference_table(title: str, cls: type, prefix: str, flags: bool = False) -> str:
    """A markdown table of the fields of ``cls`` (keys under ``prefix``, or flags)."""
    hints = type_hints(cls)
    doc = " ".join((cls.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
    head = f"| {'option' if flags else 'key'} | type | default | meaning |"
    rows = [f"### {title}", "", doc, "", head, "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        shown = "required" if default is dataclasses.MISSING else f"`{json.dumps(default)}`"
        names = _flags(f) if flags else [_join(prefix, f.name)]
        key = ", ".join(f"`{name}`" for name in names)
        meaning = f.metadata.get("help", "")
        bounds = [f"{_BOUNDS[b][1]} {f.metadata[b]}" for b in _BOUNDS if b in f.metadata]
        if bounds:
            meaning += f" Range: {', '.join(bounds)}."
        if "choices" in f.metadata:
            meaning += " Choices: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
        cells = [key, f"`{_label(hints[f.name])}`", shown, meaning]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


class Options(Section):
    """Base of a command's settings (``seele eval``, ``seele bench ...``): a :class:`Section`
    whose fields are also the command's flags (:func:`add_options`) and whose errors read as
    assignments (``samples=-1 must be >= 0 (...)``), raised as :attr:`error`."""

    error: typing.ClassVar[type[Exception]] = ConfigError

    def __post_init__(self) -> None:
        try:
            self.validate()
        except ConfigError as error:
            raise self.error(error.as_assignment()) from None


def _flags(f: dataclasses.Field[Any]) -> list[str]:
    return list(f.metadata.get("cli", {}).get("flags", [f"--{f.name.replace('_', '-')}"]))


def add_options(parser: Any, cls: type[Options]) -> None:
    """One flag per field of ``cls``: ``--max-new-tokens`` for ``max_new_tokens``, its help the
    field's help plus its default. A bool is a switch that flips its default (one defaulting to
    true needs a flag name of its own: ``--eos`` turns ``fixed_length`` off).

    A field with ``parse`` takes one text (``--hint-rates 0,0.5``), a list field several values
    (``--dataset gsm8k math500``); ``option(cli=...)`` changes the flag names or adds
    ``add_argument`` keywords. Values are checked when :func:`options_from_args` builds ``cls``.
    """
    hints = type_hints(cls)
    for f in dataclasses.fields(cls):
        extra = {k: v for k, v in f.metadata.get("cli", {}).items() if k != "flags"}
        arms = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        tp = arms[0] if is_union(hints[f.name]) else hints[f.name]
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata["help"]}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            kwargs["default"] = default
            if default not in (None, []) and tp is not bool:
                kwargs["help"] += f" Default: {_shown(default)}."
        if tp is bool:
            kwargs["action"] = "store_false" if kwargs.get("default") else "store_true"
        elif "parse" in f.metadata or "action" in extra:
            pass  # one text, parsed by options_from_args; or the action decides
        elif typing.get_origin(tp) is list:
            kwargs.update(nargs="+", type=typing.get_args(tp)[0])
        elif tp in (int, float):
            kwargs["type"] = tp
        if "choices" in f.metadata and "parse" not in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(*_flags(f), **{**kwargs, **extra})


def options_from_args(cls: type[T], args: Any) -> T:
    """``cls`` built from the parsed flags of :func:`add_options` (texts through each field's
    ``parse``), every value checked as in a config file; errors raised as ``cls.error``."""
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, f.name)
        parse = f.metadata.get("parse")
        values[f.name] = parse(value) if parse is not None and isinstance(value, str) else value
    return cls(**values)


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def options_reference(cls: type[Options], command: str) -> str:
    """A markdown table of ``command``'s options (the fields of ``cls``): flag | type | default
    | meaning, like :func:`config_reference`."""
    return reference_table(f"`{command}` options", cls, "", flags=True) + "\n"
