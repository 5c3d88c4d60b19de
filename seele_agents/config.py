"""The training configuration: nested dataclasses, loaded from YAML plus ``key=value`` overrides.

:class:`TrainConfig` holds one section per concern (``model``, ``env``, ``eval``, ``curriculum``,
``generation``, ``algo``, ``optim``, ``sft``, ``log``, ``distributed``) and a few top-level keys.
Every field carries ``metadata["help"]``, plus ``metadata["choices"]`` when its value is one of a
set and bounds (``ge``, ``gt``, ``le``, ``lt``) when it is a number with a range. The defaults
are the embedded CPU demo: a tiny model on procedural problems.

:func:`load_config` reads a YAML file, applies overrides such as ``algo.beta=0.01`` and converts
the result with type checks: a bool must be ``true``/``false``, an int may not be ``2.5``, an
unknown key gets a "did you mean". Errors are :class:`ConfigError` s naming the key path, the bad
value and where it came from. :func:`config_reference` renders every field as markdown tables.

The other commands (``seele eval``, ``seele bench ...``) declare their settings the same way, as
:class:`Options` sections: :func:`add_options` makes their flags, :func:`options_from_args`
builds and checks them from the parsed flags, :func:`options_reference` documents them.

Example:
    >>> cfg = load_config(overrides=["algo.beta=0.01", "env.difficulty=[1, 3]"])
    >>> cfg.algo.beta, cfg.env.difficulty, cfg.model.name
    (0.01, [1, 3], 'tiny')
    >>> try:
    ...     load_config(overrides=["algo.betta=0.1"])
    ... except ConfigError as error:
    ...     print(error.source, "|", error.key, "|", "Did you mean 'algo.beta'?" in error.message)
    override 'algo.betta=0.1' | algo.betta | True
    >>> config_from_dict(TrainConfig, {"algo": {"epsilon_low": "abc"}})
    Traceback (most recent call last):
    ...
    seele_agents.config.ConfigError: algo.epsilon_low: expected a float, got 'abc' (str)
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import inspect
import json
import math
import operator
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seele_agents.algos.registry import LEARNERS, LOSS_TYPES
from seele_env.curricula import CURRICULA, Curriculum
from seele_env.hints import PLACEMENTS, TEMPLATES, UNITS
from seele_env.procedural import FAMILIES, MAX_DIFFICULTY

T = TypeVar("T")

DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Parameter dtypes a model may be loaded in; auto = bfloat16 on CUDA, float32 on CPU."""
BACKENDS = ("transformers", "vllm")
"""Sampling engines."""

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
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _convert(getattr(self, f.name), hints[f.name], f.name)
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


def _check_difficulty(key: str, value: int | list[int]) -> None:
    bounds = value if isinstance(value, list) else [value]
    require(
        len(bounds) == (2 if isinstance(value, list) else 1)
        and all(1 <= d <= MAX_DIFFICULTY for d in bounds),
        key,
        value,
        f"give an int in [1, {MAX_DIFFICULTY}] or a range [lo, hi] of them, e.g. [1, 3].",
    )
    require(bounds[0] <= bounds[-1], key, value, "a range [lo, hi] needs lo <= hi.")


def _check_families(families: list[str] | None) -> None:
    for i, family in enumerate(families or []):
        close = difflib.get_close_matches(family, FAMILIES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        require(family in FAMILIES, f"families[{i}]", family, f"{hint}known: {list(FAMILIES)}.")


@dataclass
class ModelConfig(Section):
    """The policy model, and whether it is trained fully or through LoRA adapters."""

    name: str = option(
        "tiny",
        '"tiny" builds the embedded tiny Llama and tokenizer locally, "smollm2" is '
        "SmolLM2-135M-Instruct converted locally, anything else is a hub id or a local folder.",
    )
    revision: str | None = option(None, "Hub revision (branch, tag or commit); null = default.")
    dtype: str = option(
        "auto",
        "Parameter dtype; auto = bfloat16 on CUDA, float32 on CPU.",
        choices=DTYPES,
    )
    device: str = option(
        "auto", "Device to train on: auto (CUDA if there is one), cpu, cuda or cuda:N."
    )
    gradient_checkpointing: bool = option(
        False, "Recompute activations in the backward pass, saving memory for time."
    )
    lora_rank: int = option(0, "Rank of the LoRA adapters; 0 = full fine-tuning.", ge=0)
    lora_alpha: float = option(16.0, "LoRA scale: updates are multiplied by alpha / rank.", gt=0)
    lora_dropout: float = option(0.0, "Dropout probability on the LoRA input.", ge=0, lt=1)
    lora_target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Names of the linear modules that get LoRA adapters (when lora_rank > 0).",
    )

    def check(self) -> None:
        require(bool(self.name.strip()), "name", self.name, 'give "tiny", a hub id or a folder.')
        require(
            re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
            "device",
            self.device,
            "use auto, cpu, cuda or cuda:N (e.g. cuda:0).",
        )
        require(
            self.lora_rank == 0 or len(self.lora_target_modules) > 0,
            "lora_target_modules",
            self.lora_target_modules,
            "LoRA needs at least one module name, e.g. [q_proj, v_proj].",
        )


@dataclass
class EnvConfig(Section):
    """The training problems and how they are shown (passed to `seele_env.MathHintEnv`)."""

    dataset: str = option(
        "procedural", '"procedural" (generated here) or a dataset name from docs/datasets.md.'
    )
    data_path: str | None = option(None, "Local file or folder of the dataset; null = the hub.")
    split: str | None = option(None, "Dataset split to train on; null = the dataset's default.")
    limit: int | None = option(None, "Keep only the first `limit` problems; null = all.", ge=1)
    num_problems: int = option(512, "Number of procedural problems generated.", ge=1)
    difficulty: int | list[int] = option(
        4, "Procedural difficulty: an int, or [lo, hi] for a range (1 = easiest)."
    )
    families: list[str] | None = option(
        ["running"], "Procedural problem families to draw from; null = all of them."
    )
    procedural_seed: int = option(0, "Seed of the procedural problem generator.")
    hint_unit: str = option("steps", "Unit hints are cut from the solution in.", choices=UNITS)
    placement: str = option(
        "response",
        "Where the hint goes: the start of the response (the model continues it) or the prompt.",
        choices=PLACEMENTS,
    )
    template: str = option(
        "plain",
        f"Prompt template: {', '.join(TEMPLATES)}, chat (the tokenizer's chat template) or a "
        "format string containing {question}.",
    )
    system_prompt: str | None = option(None, "System turn of the chat template; null = none.")
    timeout_s: float = option(5.0, "Time limit of one answer verification, in seconds.", gt=0)
    format_reward: float = option(
        0.0, "Reward added when the answer is given in an explicit format, right or wrong."
    )

    def check(self) -> None:
        _check_difficulty("difficulty", self.difficulty)
        _check_families(self.families)
        require(
            self.template in (*TEMPLATES, "chat") or "{question}" in self.template,
            "template",
            self.template,
            f"use one of {[*TEMPLATES, 'chat']} or a format string containing {{question}}.",
        )


@dataclass
class EvalConfig(Section):
    """Held-out evaluation: no hints; greedy decoding, and sampling at the training temperature."""

    dataset: str | None = option(
        None,
        "Evaluation problems; null = the training source (procedural problems then use "
        "eval.procedural_seed and exclude every training question).",
    )
    data_path: str | None = option(
        None,
        "Local file or folder of the evaluation dataset; null = env.data_path when eval.dataset "
        "is null or equals env.dataset, else the hub.",
    )
    split: str | None = option("test", "Dataset split to evaluate on; null = its default.")
    num_problems: int = option(200, "Number of evaluation problems.", ge=1)
    procedural_seed: int = option(1, "Seed of the procedural evaluation problems.")
    every_steps: int = option(
        20, "Evaluate every this many training steps; 0 = only before and after training.", ge=0
    )
    max_new_tokens: int | None = option(
        None, "Most tokens per evaluation answer; null = generation.max_new_tokens.", ge=1
    )
    samples: int = option(
        4,
        "Completions per problem sampled at generation.temperature for eval/accuracy_sampled "
        "(what RL optimises); 0 = greedy only.",
        ge=0,
    )
    hint_curve: bool = option(
        True,
        "Before and after training, also measure accuracy with 0, 1, ..., L steps of the "
        "solution given as a hint (L: the most steps of a held-out problem), greedy and, when "
        "eval.samples > 0, one sampled answer per problem.",
    )


# Curriculum arguments that `curriculum.options` may not set, and why.
_RESERVED_OPTIONS = {
    "env": "the trainer passes the environment",
    "num_rounds": "set curriculum.num_rounds instead",
    "group_size": "set curriculum.group_size instead",
    "frozen": "the trainer freezes the curriculum for evaluation itself",
}


@functools.cache
def curriculum_options(cls: type[Curriculum]) -> dict[str, Any]:
    """The keyword arguments ``cls`` accepts, its bases' included (it passes ``**kwargs`` on),
    each with its type hint as a config type (``Sequence[int]`` read as ``list[int]``)."""
    options: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):  # a subclass's argument replaces its base's
        if issubclass(klass, Curriculum) and "__init__" in vars(klass):
            hints = typing.get_type_hints(klass.__init__)
            for name in inspect.signature(klass.__init__).parameters:
                if name not in ("self", "kwargs"):
                    options[name] = _as_config_type(hints.get(name, Any))
    return options


def _as_config_type(tp: Any) -> Any:
    """``tp`` in the types :func:`_convert` knows: abstract sequences become lists."""
    if _is_union(tp):
        return functools.reduce(operator.or_, [_as_config_type(a) for a in typing.get_args(tp)])
    if typing.get_origin(tp) in (Sequence, tuple):
        return list[_as_config_type(typing.get_args(tp)[0])]  # type: ignore[misc]
    return tp


@dataclass
class CurriculumConfig(Section):
    """The hint curriculum: which hint rate each problem gets, round by round."""

    name: str = option("seele", "Hint curriculum (see docs/curricula.md).", choices=CURRICULA)
    num_rounds: int = option(4, "Sampling rounds per problem per step (SEELE's m).", ge=1)
    group_size: int = option(4, "Responses sampled per problem per round (SEELE's n).", ge=1)
    options: dict[str, Any] = option(
        {},
        "Keyword arguments of the curriculum, e.g. {target_accuracy: 0.5} for seele or "
        "{horizon: 200} for uft; each is checked against the type of that argument.",
    )

    def check(self) -> None:
        types = curriculum_options(CURRICULA[self.name])
        known = sorted(set(types) - set(_RESERVED_OPTIONS))
        for key, value in self.options.items():
            if key in _RESERVED_OPTIONS:
                raise ConfigError(f"not an option: {_RESERVED_OPTIONS[key]}.", f"options.{key}")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"curriculum {self.name!r} takes no option {key!r}.{hint} Options: {known}.",
                    f"options.{key}",
                )
            self.options[key] = _convert(value, types[key], f"options.{key}")
        _check_curriculum_values(self)


def _check_curriculum_values(cc: CurriculumConfig) -> None:
    """Build the curriculum on a stand-in env (no model, no data), so that a bad option value
    (``target_accuracy: 1.5``) is found now, not after the model has loaded."""
    from seele_env.curricula import make_curriculum
    from seele_env.errors import SeeleError
    from seele_env.simulate import SyntheticEnv

    try:
        make_curriculum(
            cc.name, SyntheticEnv(), num_rounds=cc.num_rounds, group_size=cc.group_size,
            **cc.options,
        )  # fmt: skip
    except (SeeleError, ValueError, TypeError) as error:
        named = [key for key in cc.options if re.search(rf"\b{re.escape(key)}\b", str(error))]
        key = f"options.{named[0]}" if named else "options"
        raise ConfigError(f"{error} Fix curriculum.{key}.", key) from None


@dataclass
class GenerationConfig(Section):
    """How responses are sampled during training."""

    backend: str = option(
        "transformers",
        "Sampling engine: transformers (CPU or GPU) or vllm (GPU, optional install).",
        choices=BACKENDS,
    )
    max_new_tokens: int = option(96, "Most tokens generated per response, after any hint.", ge=1)
    temperature: float = option(1.0, "Sampling temperature; 0 = greedy.", ge=0)
    top_p: float = option(1.0, "Nucleus sampling probability mass; 1 = off.", gt=0, le=1)
    top_k: int = option(0, "Sample only among the k most likely tokens; 0 = off.", ge=0)
    batch_size: int = option(128, "Most sequences per generate call.", ge=1)


@dataclass
class AlgoConfig(Section):
    """The RL algorithm: advantages, policy loss, clipping and the extra loss terms."""

    name: str = option(
        "grpo",
        "RL algorithm: "
        + ", ".join(f"{name} ({spec.summary})" for name, spec in LEARNERS.items())
        + "; see docs/agents.md.",
        choices=LEARNERS,
    )
    advantage: str = option(
        "dr_grpo",
        "GRPO's advantage: grpo = (r - mean) / std over the group, dr_grpo = r - mean (no std).",
        choices=("grpo", "dr_grpo"),
    )
    baseline: str = option(
        "pooled",
        "GRPO's baseline: the mean reward of pooled = all rounds of the problem in the step, "
        "round = the same round only.",
        choices=("pooled", "round"),
    )
    loss: str = option(
        "dr_grpo",
        "Policy-loss normalisation: "
        + ", ".join(f"{name} ({spec.paper.split(',')[0]})" for name, spec in LOSS_TYPES.items())
        + ".",
        choices=LOSS_TYPES,
    )
    epsilon_low: float = option(
        0.2, "Probability ratios below 1 - epsilon_low are clipped.", gt=0, lt=1
    )
    epsilon_high: float | None = option(
        None,
        "Ratios above 1 + epsilon_high are clipped; null = the loss type's default ("
        + ", ".join(f"{n} {t.default_epsilon_high:g}" for n, t in LOSS_TYPES.items())
        + ").",
        gt=0,
    )
    beta: float = option(
        0.001,
        "Weight of the KL penalty to the reference model: k3 KL in the loss for grpo, per-token "
        "KL in the reward for ppo and reinforcepp.",
        ge=0,
    )
    gamma: float = option(0.001, "Weight of the hint-imitation loss on hint tokens.", ge=0)
    epochs: int = option(1, "Optimisation passes over each rollout batch.", ge=1)
    minibatch_size: int = option(
        0, "Sequences per optimiser update; 0 = the whole rollout batch in one update.", ge=0
    )
    micro_batch_size: int = option(32, "Sequences per forward/backward pass.", ge=1)
    discount: float = option(
        1.0, "Discount over generated tokens for ppo and reinforcepp's returns.", ge=0, le=1
    )
    gae_lambda: float = option(
        1.0, "PPO's GAE lambda (1: returns minus values, no bootstrapping).", ge=0, le=1
    )
    value_coef: float = option(0.1, "PPO's weight of the value loss.", ge=0)
    value_clip: float | None = option(
        0.2, "PPO's clip range of values around the batch's old values; null = no clipping.", gt=0
    )
    value_lr: float | None = option(
        1e-3, "Learning rate of PPO's value head (a new layer); null = optim.lr.", gt=0
    )

    @property
    def resolved_epsilon_high(self) -> float:
        """``epsilon_high``, or the loss type's default when it is ``None``."""
        if self.epsilon_high is not None:
            return self.epsilon_high
        return LOSS_TYPES[self.loss].default_epsilon_high


@dataclass
class OptimConfig(Section):
    """The optimiser (AdamW or plain SGD) and the learning-rate schedule of the RL phase."""

    name: str = option(
        "sgd",
        "Optimiser: adamw (moves every weight by about lr per step, whatever the gradient's "
        "size) or sgd (steps proportional to the gradient; see docs/training.md).",
        choices=("adamw", "sgd"),
    )
    lr: float = option(0.02, "Peak learning rate.", gt=0)
    weight_decay: float = option(0.0, "Weight decay (AdamW's decoupled; SGD's L2).", ge=0)
    betas: list[float] = option([0.9, 0.999], "AdamW's moment decay rates [beta1, beta2].")
    momentum: float = option(0.0, "SGD's momentum; 0 = plain gradient steps.", ge=0, lt=1)
    scheduler: str = option(
        "cosine",
        "Learning-rate schedule after warm-up: constant, or a linear or cosine decay to 0.",
        choices=("constant", "linear", "cosine"),
    )
    warmup_steps: int = option(0, "Training steps of linear warm-up from 0 to lr.", ge=0)
    max_grad_norm: float = option(
        1.0, "Clip the global gradient L2 norm to this; 0 = no clipping.", ge=0
    )

    def check(self) -> None:
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            self.betas,
            "give two numbers in [0, 1), e.g. [0.9, 0.999].",
        )


@dataclass
class SFTConfig(Section):
    """Optional supervised warm-up on procedural solutions before RL (it teaches a tiny model the
    answer format)."""

    steps: int = option(
        1500,
        "Most supervised warm-up steps before RL (fewer once the skill check passes); 0 = none.",
        ge=0,
    )
    target_step_accuracy: float = option(
        0.9,
        "Stop the warm-up once greedy per-step accuracy (seele_env.procedural.check_steps) on "
        "check problems like the training ones reaches this; 0 = no check, run every step. "
        "Only procedural chain families (running, arithmetic) can be checked; with others the "
        "warm-up runs every step and says so.",
        ge=0,
        le=1,
    )
    check_every: int = option(100, "Warm-up steps between two skill checks.", ge=1)
    check_problems: int = option(
        64, "Problems of the skill check: env.families at env.difficulty, their own seed.", ge=1
    )
    batch_size: int = option(32, "Problems per supervised step.", ge=1)
    lr: float = option(3e-3, "Learning rate of the warm-up.", gt=0)
    num_problems: int = option(4000, "Procedural problems generated for the warm-up.", ge=1)
    difficulty: int | list[int] = option(
        [1, 4], "Procedural difficulty of the warm-up: an int, or [lo, hi] for a range."
    )
    families: list[str] | None = option(
        None, "Procedural families of the warm-up; null = env.families (all when that is null)."
    )
    procedural_seed: int = option(2, "Seed of the warm-up's procedural problems.")

    def check(self) -> None:
        _check_difficulty("difficulty", self.difficulty)
        _check_families(self.families)


@dataclass
class LogConfig(Section):
    """Where metrics and sample completions go."""

    jsonl: bool = option(True, "Write every step's metrics as JSON lines in output_dir.")
    tensorboard: bool = option(False, "Also log to TensorBoard (needs tensorboard).")
    wandb: bool = option(False, "Also log to Weights & Biases (needs wandb).")
    trackio: bool = option(False, "Also log to Trackio (needs trackio).")
    project: str = option("seele", "Project name for wandb and trackio.")
    progress: bool = option(True, "Show a progress bar.")
    plot: bool = option(True, "Save plots of the main metrics in output_dir after training.")
    samples_every: int = option(
        20,
        "Every this many training steps, log a table of the step's own rollouts (prompt, hint, "
        "completion, reward, hint rate, round) to samples.jsonl in output_dir and to the "
        "trackers switched on; 0 = never.",
        ge=0,
    )
    samples_per_step: int = option(
        8,
        "Rows of each sample table: the first completion of every (problem, round), problem "
        "by problem, then the second, and so on.",
        ge=1,
    )


@dataclass
class DistributedConfig(Section):
    """Several training processes, started by torchrun or accelerate launch (docs/scaling.md)."""

    backend: str = option(
        "auto",
        "Collective backend when the launcher starts several processes (WORLD_SIZE > 1): auto "
        "(nccl when training on CUDA, else gloo), gloo or nccl.",
        choices=("auto", "gloo", "nccl"),
    )
    strategy: str = option(
        "ddp",
        "How several processes hold the model: ddp (each a whole copy) or fsdp (parameters, "
        "gradients and optimiser state sharded over them with PyTorch FSDP2; full fine-tuning "
        "of GRPO or REINFORCE++ with the transformers backend).",
        choices=("ddp", "fsdp"),
    )


@dataclass
class TrainConfig(Section):
    """Everything a training run needs; the defaults are the embedded CPU demo."""

    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    log: LogConfig = field(default_factory=LogConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    steps: int = option(80, "Training steps.", ge=0)
    problems_per_step: int = option(
        4,
        "Distinct problems sampled per training step, over all processes (a multiple of their "
        "number).",
        ge=1,
    )
    seed: int = option(0, "Seed of every random number generator (python, numpy, torch).", ge=0)
    threads: int = option(
        0,
        "CPU threads torch computes with; 0 = auto: 1 for the embedded tiny model (its small "
        "operations gain little from a second thread and stall when another process shares "
        "the cores), torch's default otherwise.",
        ge=0,
    )
    output_dir: str = option("runs/seele", "Folder for the config, metrics, plots, checkpoints.")
    checkpoint_every: int = option(
        10, "Save a checkpoint every this many steps; 0 = only at the end.", ge=0
    )
    keep_checkpoints: int = option(2, "Most recent checkpoints kept; older are deleted.", ge=1)

    def check(self) -> None:
        require(bool(self.output_dir.strip()), "output_dir", self.output_dir, "give a folder.")


def eval_source(config: TrainConfig) -> tuple[str, str | None]:
    """The evaluation's dataset and data path: ``eval.dataset`` (null = ``env.dataset``), and
    ``eval.data_path``, or ``env.data_path`` when that is null and the dataset is the training
    one (a local training file must not send the evaluation to the hub)."""
    ec, env = config.eval, config.env
    data_path = ec.data_path
    if data_path is None and ec.dataset in (None, env.dataset):
        data_path = env.data_path
    return ec.dataset or env.dataset, data_path


def check_data_sources(config: TrainConfig) -> None:
    """Check, without loading anything, that the training and evaluation data can be found: a
    known dataset name, and a ``data_path`` that exists and holds data (a hub copy is not
    checked: that needs the network).

    Raises:
        ConfigError: Naming the key (``env.dataset``, ``eval.data_path``...) and the fix.
    """
    dataset, data_path = eval_source(config)
    inherited = config.eval.data_path is None and data_path is not None
    for section, name, path, path_key in (
        ("env", config.env.dataset, config.env.data_path, "env.data_path"),
        ("eval", dataset, data_path, "env.data_path" if inherited else "eval.data_path"),
    ):
        _check_dataset_name(name, f"{section}.dataset")
        if name == "file" and path is None:
            raise ConfigError(
                "got 'file' but no data_path; set it to a JSONL/JSON/Parquet/CSV file.",
                f"{section}.data_path",
            )
        if path is not None and name != "procedural":
            _check_data_path(Path(path), path_key)


def _check_dataset_name(name: str, key: str) -> None:
    from seele_env.loaders.api import DATASETS

    if name in ("procedural", "file", *DATASETS) or "/" in name or name.startswith("hf:"):
        return
    known = ["procedural", "file", *DATASETS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown dataset {name!r}.{hint} Known: {', '.join(known)}; or a hub id such as "
        "'openai/gsm8k' (docs/datasets.md).",
        key,
    )


def _check_data_path(path: Path, key: str) -> None:
    if path.is_dir():
        files = [f for f in path.iterdir() if f.is_file() and f.stat().st_size > 0]
        require(bool(files), key, str(path), "the folder holds no non-empty file; fix the path.")
    elif not path.is_file():
        require(False, key, str(path), "no such file or folder; fix the path (or set null).")
    else:
        size = path.stat().st_size
        empty = size == 0 or (size < 4096 and not path.read_bytes().strip())
        require(not empty, key, str(path), "the file is empty; fix the path.")


# --- conversion ----------------------------------------------------------------------------------

# How a type reads in error messages: (one value, several values).
_WORDS = {
    bool: ("true or false", "bools"),
    int: ("an integer", "integers"),
    float: ("a float", "floats"),
    str: ("a string", "strings"),
    type(None): ("null", "nulls"),
}


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _join(prefix: str, key: str) -> str:
    if not prefix or not key:
        return prefix or key
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _describe(tp: Any) -> str:
    """``tp`` in words: ``int | list[int]`` -> "an integer or a list of integers"."""
    if _is_union(tp):
        return " or ".join(_describe(arm) for arm in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        return "a list of " + _WORDS.get(item, ("", "values"))[1]
    if typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return _WORDS.get(tp, (getattr(tp, "__name__", str(tp)),))[0]


def _label(tp: Any) -> str:
    """``tp`` as written in the dataclass: ``int | list[int]``, ``dict[str, Any]``."""
    if _is_union(tp):
        return " | ".join(_label(arm) for arm in typing.get_args(tp))
    if typing.get_origin(tp) in (list, dict):
        args = ", ".join(_label(arg) for arg in typing.get_args(tp))
        return f"{typing.get_origin(tp).__name__}[{args}]"
    return "None" if tp is type(None) else "Any" if tp is Any else tp.__name__


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the type hint ``tp`` (ints widened to floats, mappings built into
    dataclasses); ``key`` is its path, for errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if _is_union(tp):
        return _convert_union(value, tp, key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _from_dict(tp, value, key)  # type: ignore[arg-type]
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_convert(item, args[0], f"{key}[{i}]") for i, item in enumerate(value)]
    elif origin is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return {k: copy.deepcopy(_convert(v, args[1], _join(key, k))) for k, v in value.items()}
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
            return _convert(value, arm, key)
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
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise _unknown_key(prefix, key, names)
        kwargs[key] = _convert(value, hints[key], _join(prefix, key))
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
    text = yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- files and overrides -------------------------------------------------------------------------


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


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # safe: _Loader builds no arbitrary objects


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
    try:
        value = _load_yaml(raw)
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        message = f"the value {raw!r} is not valid YAML ({problem}); quote text values."
        raise ConfigError(message, source=source) from None
    return keys, value


def _deep_set(data: dict[str, Any], cls: type, keys: list[str], value: Any) -> None:
    """``data[k1][k2]... = value``, after checking the key path against the dataclass ``cls``."""
    node, tp = data, cls
    for depth, part in enumerate(keys):
        here = ".".join(keys[:depth])
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                raise _unknown_key(here, part, names)
            tp = _type_hints(tp)[part]
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


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"the config file {what}; check the path.", source=str(path))
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}", source=str(path)) from None
    if data is None:  # an empty file: every default
        return {}
    if not isinstance(data, dict):
        message = f"expected a mapping such as 'algo: {{beta: 0.01}}', got {type(data).__name__}."
        raise ConfigError(message, source=str(path))
    return data


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """The training configuration: the defaults, then the YAML file at ``path``, then overrides.

    Overrides (``"algo.beta=0.01"``, see :func:`parse_override`) apply in order, before the type
    checks, so they are checked like the file.

    Raises:
        ConfigError: A missing file, bad YAML, an unknown key or a bad value; the message names
            the file or override it came from.
    """
    data = _read_yaml(Path(path)) if path is not None else {}
    applied: list[tuple[str, str]] = []  # (dotted key, override), to say where an error came from
    for text in overrides:
        keys, value = parse_override(text)
        try:
            _deep_set(data, TrainConfig, keys, value)
        except ConfigError as error:
            raise error.from_source(f"override {text!r}") from None
        applied.append((".".join(keys), text))
    try:
        return config_from_dict(TrainConfig, data)
    except ConfigError as error:
        for key, text in reversed(applied):
            if error.key == key or error.key.startswith((key + ".", key + "[")):
                raise error.from_source(f"override {text!r}") from None
        raise error.from_source("" if path is None else str(path)) from None


# --- reference -----------------------------------------------------------------------------------


def config_reference(cls: type = TrainConfig) -> str:
    """Markdown tables of every field of ``cls``: its own keys first, then one table per section.

    Columns: key | type | default | meaning (with the choices and bounds).
    """
    hints = _type_hints(cls)
    blocks = [_table("Top level", cls, "")]
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            blocks.append(_table(f"`{f.name}`", hints[f.name], f.name))
    return "\n\n".join(blocks) + "\n"


def _table(title: str, cls: type, prefix: str, flags: bool = False) -> str:
    hints = _type_hints(cls)
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


# --- commands' options ---------------------------------------------------------------------------


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
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):
        extra = {k: v for k, v in f.metadata.get("cli", {}).items() if k != "flags"}
        arms = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        tp = arms[0] if _is_union(hints[f.name]) else hints[f.name]
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
    return _table(f"`{command}` options", cls, "", flags=True) + "\n"
