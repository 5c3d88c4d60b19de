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

The machinery (:func:`option`, :class:`Section`, :class:`ConfigError`, the conversion, the YAML
rules, :class:`Options` and the flags of the other commands) is :mod:`seele_agents.options`;
its public names are importable from here too.

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
    seele_agents.options.ConfigError: algo.epsilon_low: expected a float, got 'abc' (str)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import operator
import os
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from seele_agents.algos.registry import LEARNERS, LOSS_TYPES
from seele_agents.options import (
    REQUIRED,
    ConfigError,
    Options,
    Section,
    add_options,
    config_from_dict,
    config_to_dict,
    convert,
    deep_set,
    is_union,
    option,
    options_from_args,
    options_reference,
    parse_override,
    read_yaml,
    reference_table,
    require,
    save_config,
    type_hints,
)
from seele_env.curricula import CURRICULA, Curriculum
from seele_env.hints import PLACEMENTS, TEMPLATES, UNITS
from seele_env.procedural import FAMILIES, MAX_DIFFICULTY

__all__ = [  # the settings system's names, re-exported: they were defined here before
    "REQUIRED",
    "ConfigError",
    "Options",
    "Section",
    "add_options",
    "config_from_dict",
    "config_to_dict",
    "option",
    "options_from_args",
    "options_reference",
    "parse_override",
    "require",
    "save_config",
]

T = TypeVar("T")

DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Parameter dtypes a model may be loaded in; auto = bfloat16 on CUDA, float32 on CPU."""
BACKENDS = ("transformers", "vllm")
"""Sampling engines."""


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
    """``tp`` in the types :func:`convert` knows: abstract sequences become lists."""
    if is_union(tp):
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
            self.options[key] = convert(value, types[key], f"options.{key}")
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
    data = read_yaml(Path(path)) if path is not None else {}
    applied: list[tuple[str, str]] = []  # (dotted key, override), to say where an error came from
    for text in overrides:
        keys, value = parse_override(text)
        try:
            deep_set(data, TrainConfig, keys, value)
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
    hints = type_hints(cls)
    blocks = [reference_table("Top level", cls, "")]
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            blocks.append(reference_table(f"`{f.name}`", hints[f.name], f.name))
    return "\n\n".join(blocks) + "\n"
