"""The ``seele eval`` command: settings, the output folder, models and data, around the evaluation.

    seele eval --model tiny --dataset procedural --hint-rates 0,0.5,1 --samples 4
    seele eval --model runs/seele/checkpoints/step-00000030 --dataset math500 aime24 \\
        --data-dir ../shared/data --samples 8

:func:`run_eval` reads top to bottom: settings (:class:`EvalConfig`), the output folder
(:func:`prepare_output_dir`: fingerprint and resume), problems, model,
:func:`~seele_agents.evaluation.evaluate_model`, outputs (:func:`write_outputs`). The metrics
and the loop are :mod:`seele_agents.evaluation`; docs/evaluation.md describes every option.

Only the standard library is imported at module level: the ``seele`` command imports this
module to build its parser, and ``seele --help`` should not wait for torch.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seele_agents.evaluation import (
    RESULTS_FILE,
    EvalError,
    EvalResult,
    evaluate_model,
    format_curve,
    format_table,
    plot_hint_curve,
    write_atomic,
)

if TYPE_CHECKING:
    from seele_agents.generation import Generator
    from seele_env.env import MathHintEnv
    from seele_env.loaders import ProblemSet

CONFIG_FILE = "eval_config.json"
"""The settings fingerprint; a rerun in the folder must match it to resume."""
SUMMARY_FILE = "summary.json"
TABLE_FILE = "results.md"
CURVE_FILE = "hint_curve.png"
OUTPUT_FILES = (RESULTS_FILE, CONFIG_FILE, SUMMARY_FILE, TABLE_FILE, CURVE_FILE)

DATA_DIR_NAMES = {"minerva": ("minerva", "minerva_math")}
"""Sub-folder names tried in ``--data-dir`` for a dataset (the shared data calls one
``minerva_math``); every other dataset's folder has its own name."""
PROCEDURAL_DEFAULT_LIMIT = 200
BACKENDS = ("transformers", "vllm")
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_FINGERPRINT_SKIP = ("device", "batch_size", "output_dir")  # change speed, not results


# --- settings -------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """What to evaluate and how; ``seele eval`` builds one from its options (same names).

    Attributes:
        model: ``"tiny"``, ``"smollm2"``, a hub id, a folder written by ``save_pretrained``, a
            ``seele train`` checkpoint folder (holding ``model/``) or run folder (its latest
            checkpoint).
        datasets: Names from docs/datasets.md, ``"procedural"``, or paths of data files.
        hint_rates: Hint rates to pin, each in [0, 1]; sorted, duplicates removed.
        samples: Sampled completions per problem (K) besides the greedy one; 0 = greedy only.
        temperature: Sampling temperature of the K samples (> 0).
        top_p: Nucleus mass of the K samples, in (0, 1].
        max_new_tokens: Most tokens generated per completion (after any forced hint).
        data_path: A file or folder for the single dataset named.
        data_dir: A folder with one sub-folder per dataset (``gsm8k/``, ``math500/``, ...).
        split: Split of the named datasets; ``None`` = ``test`` where the dataset has one.
        limit: First ``limit`` problems per dataset; ``None`` = all (200 for procedural).
        difficulty: Procedural difficulty, an int or a ``(lo, hi)`` range.
        families: Procedural families; ``None`` = all.
        procedural_seed: Seed of the procedural problems (training's default is 0).
        template: ``"auto"``, ``"chat"``, ``"plain"``, ``"r1"`` or a string with ``{question}``;
            auto = the checkpoint's training template, else chat when the tokenizer has a chat
            template, else plain.
        system_prompt: System turn of the chat template.
        placement: ``"response"`` (the model continues the hint) or ``"prompt"``.
        hint_unit: ``"steps"``, ``"sentences"`` or ``"tokens"``.
        timeout_s: Time limit of one answer verification.
        seed: Seed of the sampling (and of the tiny model's initialisation).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU) or a dtype name.
        backend: ``"transformers"`` or ``"vllm"``.
        batch_size: Problems per generation call (a call carries all their completions).
        output_dir: Where the outputs go; ``None`` = ``evals/<model name>``.
    """

    model: str
    datasets: tuple[str, ...]
    hint_rates: tuple[float, ...] = (0.0,)
    samples: int = 0
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 1024
    data_path: str | None = None
    data_dir: str | None = None
    split: str | None = None
    limit: int | None = None
    difficulty: int | tuple[int, int] = 2
    families: tuple[str, ...] | None = None
    procedural_seed: int = 1
    template: str = "auto"
    system_prompt: str | None = None
    placement: str = "response"
    hint_unit: str = "steps"
    timeout_s: float = 5.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "transformers"
    batch_size: int = 16
    output_dir: str | None = None

    def __post_init__(self) -> None:
        from seele_env.hints import PLACEMENTS, UNITS

        self.datasets = tuple(self.datasets)
        for name, value, ok, fix in (
            ("samples", self.samples, _is_int(self.samples, 0), "an int >= 0 (0 = greedy only)"),
            ("max_new_tokens", self.max_new_tokens, _is_int(self.max_new_tokens, 1), "an int >= 1"),
            ("batch_size", self.batch_size, _is_int(self.batch_size, 1), "an int >= 1"),
            ("limit", self.limit, self.limit is None or _is_int(self.limit, 1), "an int >= 1"),
            ("top_p", self.top_p, 0 < self.top_p <= 1, "in (0, 1]"),
            ("timeout_s", self.timeout_s, self.timeout_s > 0, "> 0 seconds"),
            ("placement", self.placement, self.placement in PLACEMENTS, f"one of {PLACEMENTS}"),
            ("hint_unit", self.hint_unit, self.hint_unit in UNITS, f"one of {UNITS}"),
            ("backend", self.backend, self.backend in BACKENDS, f"one of {BACKENDS}"),
            ("dtype", self.dtype, self.dtype in DTYPE_NAMES, f"one of {DTYPE_NAMES}"),
        ):  # fmt: skip
            if not ok:
                raise EvalError(f"{name}={value!r} is not valid: it must be {fix}.")
        if self.samples and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise EvalError(
                f"temperature={self.temperature!r} with samples={self.samples}: sampled "
                "completions need a temperature > 0 (the greedy completion is always made)."
            )
        self.hint_rates = _check_hint_rates(self.hint_rates)
        self._check_template()
        self._check_datasets()
        self._check_procedural()

    def _check_template(self) -> None:
        from seele_env.hints import TEMPLATES

        if self.template not in ("auto", "chat", *TEMPLATES) and "{question}" not in self.template:
            raise EvalError(
                f"template={self.template!r} is neither auto, chat, {', '.join(TEMPLATES)} nor a "
                "format string containing {question}."
            )

    def _check_datasets(self) -> None:
        if not self.datasets:
            raise EvalError("no dataset given; name at least one, e.g. --dataset gsm8k.")
        twice = sorted({d for d in self.datasets if self.datasets.count(d) > 1})
        if twice:
            raise EvalError(f"dataset(s) {twice} are named twice; name each once.")
        for name in self.datasets:
            _check_dataset_name(name)
        if self.data_path is not None:
            if len(self.datasets) != 1 or self.datasets[0] == "procedural":
                raise EvalError(
                    f"--data-path {self.data_path} is for one named dataset, but the datasets "
                    f"are {list(self.datasets)}; use --data-dir for several (one sub-folder "
                    "each), or pass data files as datasets."
                )
            if self.data_dir is not None:
                raise EvalError("give --data-path or --data-dir, not both.")
            if not Path(self.data_path).exists():
                raise EvalError(f"--data-path {self.data_path} does not exist.")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise EvalError(
                f"--data-dir {self.data_dir} is not a folder; give the folder holding one "
                "sub-folder per dataset (gsm8k/, math500/, ...)."
            )

    def _check_procedural(self) -> None:
        from seele_env.errors import DatasetError
        from seele_env.procedural import generate_problems

        if "procedural" in self.datasets:
            try:  # generating one problem checks difficulty, families and seed
                families = {"families": self.families} if self.families else {}
                generate_problems(1, seed=self.procedural_seed, difficulty=self.difficulty,
                                  **families)  # fmt: skip
            except DatasetError as error:
                raise EvalError(f"procedural problems: {error}") from None


def _is_int(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_hint_rates(rates: Sequence[float]) -> tuple[float, ...]:
    if not rates:
        raise EvalError("no hint rate given; e.g. --hint-rates 0 or --hint-rates 0,0.5,1.")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise EvalError(
                f"hint rate {rate!r} is outside [0, 1]; a rate is the share of the reference "
                "solution revealed (0 = no hint, 1 = all of it), e.g. --hint-rates 0,0.5,1."
            )
    return tuple(sorted({float(r) for r in rates}))


def _is_file_dataset(name: str) -> bool:
    return name.lower().endswith(FILE_SUFFIXES) or Path(name).is_file()


def _check_dataset_name(name: str) -> None:
    import difflib

    from seele_env.loaders import DATASETS

    if name == "procedural" or name in DATASETS:
        return
    if _is_file_dataset(name):
        if not Path(name).is_file():
            raise EvalError(f"dataset file {name} does not exist.")
        return
    if "/" in name or name.startswith("hf:"):  # a Hugging Face hub id, loaded by the loader
        return
    valid = ["procedural", *DATASETS]
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    guess = f" Did you mean {close[0]!r}?" if close else ""
    raise EvalError(
        f"unknown dataset {name!r}.{guess} Known: {', '.join(valid)}; or the path of a "
        f"{'/'.join(FILE_SUFFIXES)} file, or a hub id such as 'openai/gsm8k'."
    )


def parse_hint_rates(text: str) -> tuple[float, ...]:
    """``"0,0.5,1"`` -> ``(0.0, 0.5, 1.0)``; an :class:`EvalError` names a bad entry."""
    rates = []
    for part in text.split(","):
        try:
            rates.append(float(part))
        except ValueError:
            raise EvalError(
                f"--hint-rates {text!r}: {part.strip()!r} is not a number; give rates in [0, 1] "
                "separated by commas, e.g. --hint-rates 0,0.25,0.5."
            ) from None
    return _check_hint_rates(rates)


def parse_difficulty(text: str) -> int | tuple[int, int]:
    """``"2"`` -> ``2``; ``"1-3"`` -> ``(1, 3)``."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
    if match is None:
        raise EvalError(f"--difficulty {text!r} must be an int (2) or a range (1-3).")
    low, high = match.groups()
    return int(low) if high is None else (int(low), int(high))


# --- the output folder: fingerprint -------------------------------------------------------------


def fingerprint(config: EvalConfig, model: str, dtype: str) -> dict[str, Any]:
    """The settings that decide the results: every field but device, batch size and output dir,
    with the model as resolved (an absolute folder) and the dtype as resolved."""
    settings = {k: v for k, v in asdict(config).items() if k not in _FINGERPRINT_SKIP}
    settings.update(model=model, dtype=dtype)
    for key in ("data_path", "data_dir"):
        if settings[key] is not None:
            settings[key] = str(Path(settings[key]).resolve())
    settings["datasets"] = [str(Path(d).resolve()) if _is_file_dataset(d) else d
                            for d in config.datasets]  # fmt: skip
    return json.loads(json.dumps(settings))  # tuples -> lists: compares equal to a reread


def prepare_output_dir(
    out: Path, settings: Mapping[str, Any], *, overwrite: bool = False, echo: Any = print
) -> None:
    """Make ``out`` ready: refuse results of other settings, clear it on ``overwrite``, and
    write the fingerprint (before any result, so a result never exists without one)."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
    results, config_path = out / RESULTS_FILE, out / CONFIG_FILE
    has_results = results.is_file() and results.stat().st_size > 0
    if config_path.is_file():
        old = json.loads(config_path.read_text(encoding="utf-8")).get("settings", {})
        differing = sorted(k for k in {*old, *settings} if old.get(k) != settings.get(k))
        if differing and has_results:
            changes = "; ".join(
                f"{k} ({json.dumps(old.get(k))} there, {json.dumps(settings.get(k))} now)"
                for k in differing
            )
            raise EvalError(
                f"{out} holds results of an evaluation with other settings: {changes}. Rerun "
                "with its settings to resume it, pass --overwrite to discard its results, or "
                "choose another --output-dir."
            )
        if differing:
            echo(f"note: {out} had no results yet; its {CONFIG_FILE} is replaced")
    elif has_results:
        raise EvalError(
            f"{out} holds {RESULTS_FILE} but no {CONFIG_FILE}, so its settings are unknown; "
            "pass --overwrite to discard its results, or choose another --output-dir."
        )
    text = json.dumps({"format": 1, "settings": settings}, indent=1)
    write_atomic(config_path, text + "\n")


def write_outputs(
    out: Path, result: EvalResult, settings: Mapping[str, Any], template: str, echo: Any = print
) -> None:
    """``summary.json``, ``results.md``, ``hint_curve.png`` (several rates); print the table."""
    summary = {"settings": settings, "template": template, "cells": result.cells,
               "notes": result.notes}  # fmt: skip
    write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    table = format_table(result.cells, result.samples)
    write_atomic(out / TABLE_FILE, table)
    echo("\n" + table)
    if len({c["hint_rate"] for c in result.cells}) > 1:
        echo(format_curve(result.cells))
        echo(f"plot: {plot_hint_curve(result.cells, result.samples, out / CURVE_FILE)}")
    echo(f"results: {out / RESULTS_FILE}, {out / SUMMARY_FILE}, {out / TABLE_FILE}")


# --- from settings to results --------------------------------------------------------------------


def run_eval(
    config: EvalConfig, *, overwrite: bool = False, progress: bool = True, echo: Any = print
) -> EvalResult:
    """The whole ``seele eval``: check the folder, load problems and model, evaluate, write."""
    import torch

    from seele_agents.models import load_model, resolve_device, resolve_dtype
    from seele_env.verify import Verifier

    try:
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
    except (ValueError, RuntimeError) as error:
        raise EvalError(str(error)) from None
    model_path, trained_template = resolve_model(config.model, echo)
    out = Path(config.output_dir or default_output_dir(config.model))
    settings = fingerprint(config, model_path, str(dtype).removeprefix("torch."))
    prepare_output_dir(out, settings, overwrite=overwrite, echo=echo)
    problem_sets = load_problem_sets(config)
    torch.manual_seed(config.seed)
    model, tokenizer = load_model(model_path, dtype=config.dtype, device=config.device,
                                  seed=config.seed)  # fmt: skip
    template = resolve_template(config.template, trained_template, tokenizer)
    sizes = ", ".join(f"{name} {len(ps)}" for name, ps in problem_sets.items())
    echo(f"model {model_path} on {device}; template {template}; problems: {sizes}")
    verifier = Verifier(timeout_s=config.timeout_s)
    try:
        envs = make_envs(problem_sets, config, tokenizer, template, verifier)
        result = evaluate_model(
            make_generator(config, model, tokenizer), envs, hint_rates=config.hint_rates,
            samples=config.samples, max_new_tokens=config.max_new_tokens,
            temperature=config.temperature, top_p=config.top_p, batch_size=config.batch_size,
            seed=config.seed, results_path=out / RESULTS_FILE, progress=progress, echo=echo,
        )  # fmt: skip
    finally:
        verifier.close()
    write_outputs(out, result, settings, template, echo)
    return result


def default_output_dir(model: str) -> Path:
    """``evals/<name>``: the model name, or a folder's last meaningful parts, made file-safe."""
    path = Path(model).expanduser()
    if model not in ("tiny", "smollm2") and path.exists():
        parts = [p for p in path.resolve().parts if p not in ("model", "checkpoints", path.anchor)]
        model = "_".join(parts[-2:])
    return Path("evals") / (re.sub(r"[^\w.-]+", "_", model).strip("._") or "model")


def resolve_model(name: str, echo: Any = print) -> tuple[str, str | None]:
    """What ``load_model`` gets for ``--model``, and the template a seele checkpoint was trained
    with (``None`` otherwise): a checkpoint folder means its ``model/``, a run folder its latest
    checkpoint."""
    path = Path(name).expanduser()
    if name in ("tiny", "smollm2") or not path.is_dir():
        return name, None  # a hub id, or a missing folder that load_model reports
    if (path / "config.json").is_file():
        return str(path.resolve()), _trained_template(path.parent)
    if (path / "model").is_dir():
        if (path / "model" / "adapter_config.json").is_file():
            raise EvalError(
                f"{path / 'model'} holds a LoRA adapter, not a whole model; merge it first "
                "(seele_agents.models.save_merged(model, tokenizer, folder)) and pass that folder."
            )
        return str((path / "model").resolve()), _trained_template(path)
    if (path / "checkpoints").is_dir():
        from seele_agents.checkpoint import latest_checkpoint

        latest = latest_checkpoint(path)
        if latest is not None:
            echo(f"{path} is a training run: evaluating its latest checkpoint, {latest.name}")
            return resolve_model(str(latest), echo)
    raise EvalError(
        f"--model {name}: the folder holds neither config.json (a save_pretrained folder), "
        "model/ (a seele checkpoint) nor complete checkpoints/ (a seele run)."
    )


def _trained_template(checkpoint: Path) -> str | None:
    state = checkpoint / "state.json"
    if not state.is_file():
        return None
    config = json.loads(state.read_text(encoding="utf-8")).get("state", {}).get("config", {})
    return config.get("env", {}).get("template")


def resolve_template(requested: str, trained: str | None, tokenizer: Any) -> str:
    """``auto`` -> the training template, else ``chat`` with a chat template, else ``plain``."""
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if requested == "chat" and not has_chat:
        raise EvalError(
            "template='chat' but the tokenizer has no chat template; use --template plain "
            "(or r1, or auto)."
        )
    if requested != "auto":
        return requested
    return trained or ("chat" if has_chat else "plain")


def load_problem_sets(config: EvalConfig) -> dict[str, ProblemSet]:
    """Each dataset's problems (``config.limit`` first ones), before any model is loaded."""
    from seele_env.loaders import DATASETS, ProblemSet, load_problems
    from seele_env.procedural import generate_problems

    sets = {}
    for name in config.datasets:
        if name == "procedural":
            families = {"families": config.families} if config.families else {}
            sets[name] = ProblemSet(generate_problems(
                config.limit or PROCEDURAL_DEFAULT_LIMIT, seed=config.procedural_seed,
                difficulty=config.difficulty, **families,
            ))  # fmt: skip
        elif _is_file_dataset(name):
            sets[name] = load_problems("file", data_path=name, split=config.split,
                                       limit=config.limit)  # fmt: skip
        else:
            spec = DATASETS.get(name)
            split = config.split or (("test" if "test" in spec.splits else None) if spec else None)
            path = _data_path(config, name) if spec else config.data_path  # hub ids: no dir
            sets[name] = load_problems(name, data_path=path, split=split, limit=config.limit)
    return sets


def _data_path(config: EvalConfig, name: str) -> str | None:
    if config.data_path is not None or config.data_dir is None:
        return config.data_path
    root = Path(config.data_dir)
    for folder in DATA_DIR_NAMES.get(name, (name,)):
        if (root / folder).is_dir():
            return str(root / folder)
    present = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise EvalError(
        f"--data-dir {root} has no folder for {name} (looked for "
        f"{', '.join(DATA_DIR_NAMES.get(name, (name,)))}/; it has {', '.join(present) or 'none'}); "
        "use --data-path for a folder of another name."
    )


def make_envs(
    problem_sets: Mapping[str, ProblemSet],
    config: EvalConfig,
    tokenizer: Any,
    template: str,
    verifier: Any,
) -> dict[str, MathHintEnv]:
    """One env per dataset, all rendering alike and sharing one verifier."""
    from seele_env.env import MathHintEnv

    kwargs = dict(
        hint_unit=config.hint_unit, placement=config.placement, template=template,
        tokenizer=tokenizer, system_prompt=config.system_prompt, verifier=verifier,
    )  # fmt: skip
    return {name: MathHintEnv(problems=ps, **kwargs) for name, ps in problem_sets.items()}


def make_generator(config: EvalConfig, model: Any, tokenizer: Any) -> Generator:
    """The backend ``config.backend`` names; one forward batch holds a whole call."""
    if config.backend == "vllm":
        from seele_agents.vllm_generation import VLLMGenerator

        return VLLMGenerator(model, tokenizer, seed=config.seed)
    from seele_agents.generation import TransformersGenerator

    per_call = config.batch_size * max(1, config.samples)
    return TransformersGenerator(model, tokenizer, batch_size=per_call, seed=config.seed)


# --- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele eval`` (docs/evaluation.md describes each)."""
    add = parser.add_argument
    add("--model", required=True,
        help="tiny, smollm2, a hub id, a save_pretrained folder, or a seele checkpoint/run folder",
    )  # fmt: skip
    add("--dataset", "--datasets", nargs="+", required=True, dest="datasets", metavar="NAME",
        help="gsm8k math500 aime24 aime25 amc23 minerva olympiadbench procedural, or data files",
    )  # fmt: skip
    add("--hint-rates", default="0", metavar="R1,R2,...",
        help="hint rates to pin, comma-separated, each in [0, 1] (default 0)",
    )  # fmt: skip
    add("--samples", type=int, default=0, metavar="K",
        help="sampled completions per problem for avg@K and pass@k (default 0: greedy only)",
    )  # fmt: skip
    add("--temperature", type=float, default=0.6, help="temperature of the samples (0.6)")
    add("--top-p", type=float, default=0.95, help="nucleus mass of the samples (0.95)")
    add("--max-new-tokens", type=int, default=1024, help="most tokens per completion (1024)")
    add("--batch-size", type=int, default=16, help="problems per generation call (16)")
    add("--data-path", help="a file or folder for the single dataset named")
    add("--data-dir", help="a folder with one sub-folder per dataset (e.g. ../shared/data)")
    add("--split", help="dataset split (default: test where the dataset has one)")
    add("--limit", type=int, help="first N problems per dataset (default all; 200 procedural)")
    add("--difficulty", default="2", help="procedural difficulty: 2, or a range 1-3 (2)")
    add("--families", help="procedural families, comma-separated (default all)")
    add("--procedural-seed", type=int, default=1, help="seed of the procedural problems (1)")
    add("--template", default="auto", help="auto, chat, plain, r1 or a string with {question}")
    add("--system-prompt", help="system turn of the chat template")
    add("--placement", default="response", choices=("response", "prompt"),
        help="where the hint goes (response: the model continues it)",
    )  # fmt: skip
    add("--hint-unit", default="steps", choices=("steps", "sentences", "tokens"),
        help="unit hints are cut in (steps)",
    )  # fmt: skip
    add("--timeout-s", type=float, default=5.0, help="time limit of one verification (5)")
    add("--seed", type=int, default=0, help="sampling seed (0)")
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add("--dtype", default="auto", choices=DTYPE_NAMES, help="parameter dtype (auto)")
    add("--backend", default="transformers", choices=BACKENDS, help="generation backend")
    add("--output-dir", help="where the outputs go (default evals/<model name>)")
    add("--overwrite", action="store_true", help="discard the results already in --output-dir")
    add("--no-progress", dest="progress", action="store_false", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` of parsed ``seele eval`` options."""
    families = tuple(f.strip() for f in args.families.split(",")) if args.families else None
    return EvalConfig(
        model=args.model, datasets=tuple(args.datasets),
        hint_rates=parse_hint_rates(args.hint_rates), samples=args.samples,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        data_path=args.data_path, data_dir=args.data_dir, split=args.split, limit=args.limit,
        difficulty=parse_difficulty(args.difficulty), families=families,
        procedural_seed=args.procedural_seed, template=args.template,
        system_prompt=args.system_prompt, placement=args.placement, hint_unit=args.hint_unit,
        timeout_s=args.timeout_s, seed=args.seed, device=args.device, dtype=args.dtype,
        backend=args.backend, batch_size=args.batch_size, output_dir=args.output_dir,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``seele eval``; returns the exit status (2 for bad input, 130 when interrupted)."""
    from seele_env.errors import SeeleError

    try:
        run_eval(config_from_args(args), overwrite=args.overwrite, progress=args.progress)
    except (EvalError, SeeleError, OSError, ImportError) as error:
        print(f"seele eval: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished batches are saved; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    return 0
