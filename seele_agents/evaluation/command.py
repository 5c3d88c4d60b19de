"""The ``seele eval`` command: settings, the output folder, models and data, around the evaluation.

    seele eval --model tiny --dataset procedural --hint-rates 0,0.5,1 --samples 4
    seele eval --model runs/seele/checkpoints/step-00000030 --dataset math500 aime24 \\
        --data-dir ../shared/data --samples 8

:func:`run_eval` reads top to bottom: settings (:class:`EvalCommandConfig`), the output folder
(:func:`prepare_output_dir`: fingerprint and resume), problems, model,
:func:`~seele_agents.evaluation.metrics.evaluate_model`, outputs (:func:`write_outputs`). The
metrics and the loop are :mod:`seele_agents.evaluation.metrics`; docs/evaluation.md describes every
option.

Neither torch nor the evaluation's dependencies are imported at module level: the ``seele``
command imports this module to build its parser, and ``seele --help`` should not wait for them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seele_agents._moved import forwarding
from seele_agents.config import (
    BACKENDS,
    DTYPES,
    REQUIRED,
    Options,
    add_options,
    option,
    options_from_args,
)
from seele_agents.evaluation.metrics import (
    RESULTS_FILE,
    EvalError,
    EvalResult,
    evaluate_model,
    format_curve,
    format_table,
    plot_hint_curve,
)
from seele_agents.files import write_atomic
from seele_env.hints import PLACEMENTS, TEMPLATES, UNITS, Rendering

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
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_FINGERPRINT_SKIP = ("device", "batch_size", "output_dir")  # change speed, not results


# --- settings -------------------------------------------------------------------------------------


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


def _parse_families(text: str) -> list[str]:
    return [family.strip() for family in text.split(",")]


@dataclass
class EvalCommandConfig(Options):
    """What ``seele eval`` evaluates and how; each field is the option of the same name."""

    error = EvalError

    model: str = option(
        REQUIRED,
        "tiny, smollm2, a hub id, a save_pretrained folder, a seele checkpoint folder (holding "
        "model/) or a seele run folder (its latest checkpoint).",
    )
    datasets: list[str] = option(
        REQUIRED,
        "Names from docs/datasets.md (gsm8k math500 aime24 aime25 amc23 minerva olympiadbench), "
        "procedural, or paths of data files.",
        cli={"flags": ("--dataset", "--datasets"), "metavar": "NAME"},
    )
    hint_rates: list[float] = option(
        [0.0],
        "Hint rates to pin, comma-separated, each in [0, 1]; sorted, duplicates removed.",
        parse=parse_hint_rates,
        cli={"metavar": "R1,R2,..."},
    )
    samples: int = option(
        0,
        "Sampled completions per problem (K) for avg@K and pass@k, besides the greedy one; "
        "0 = greedy only.",
        ge=0,
        cli={"metavar": "K"},
    )
    temperature: float = option(0.6, "Sampling temperature of the K samples (> 0).")
    top_p: float = option(0.95, "Nucleus mass of the K samples.", gt=0, le=1)
    max_new_tokens: int = option(
        1024, "Most tokens generated per completion (after any forced hint).", ge=1
    )
    data_path: str | None = option(None, "A file or folder for the single dataset named.")
    data_dir: str | None = option(
        None, "A folder with one sub-folder per dataset (gsm8k/, math500/, ...)."
    )
    split: str | None = option(None, "Split of the named datasets; null = test where there is one.")
    limit: int | None = option(
        None, "First N problems per dataset; null = all (200 for procedural).", ge=1
    )
    difficulty: int | list[int] = option(
        2, "Procedural difficulty: an int, or a range lo-hi (1-3).", parse=parse_difficulty
    )
    families: list[str] | None = option(
        None, "Procedural families, comma-separated; null = all.", parse=_parse_families
    )
    procedural_seed: int = option(1, "Seed of the procedural problems (training's default is 0).")
    template: str = option(
        "auto",
        f"auto, chat, {', '.join(TEMPLATES)} or a format string containing {{question}}; auto = "
        "the checkpoint's training template, else chat when the tokenizer has a chat template, "
        "else plain.",
    )
    system_prompt: str | None = option(None, "System turn of the chat template.")
    placement: str = option(
        "response",
        "Where the hint goes: response (the model continues it) or prompt.",
        choices=PLACEMENTS,
    )
    hint_unit: str = option("steps", "Unit hints are cut in.", choices=UNITS)
    timeout_s: float = option(5.0, "Time limit of one answer verification, in seconds.", gt=0)
    seed: int = option(0, "Seed of the sampling (and of the tiny model's initialisation).")
    device: str = option("auto", "auto, cpu, cuda or cuda:N.")
    dtype: str = option(
        "auto", "Parameter dtype; auto = bfloat16 on CUDA, float32 on CPU.", choices=DTYPES
    )
    backend: str = option("transformers", "Generation backend.", choices=BACKENDS)
    batch_size: int = option(
        16, "Problems per generation call (a call carries all their completions).", ge=1
    )
    output_dir: str | None = option(None, "Where the outputs go; null = evals/<model name>.")

    def check(self) -> None:
        if self.samples and not self.temperature > 0:
            raise EvalError(
                f"temperature={self.temperature!r} with samples={self.samples}: sampled "
                "completions need a temperature > 0 (the greedy completion is always made)."
            )
        self.hint_rates = list(_check_hint_rates(self.hint_rates))
        if self.template not in ("auto", "chat", *TEMPLATES) and "{question}" not in self.template:
            raise EvalError(
                f"template={self.template!r} is neither auto, chat, {', '.join(TEMPLATES)} nor a "
                "format string containing {question}."
            )
        self._check_datasets()
        self._check_procedural()

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
                generate_problems(1, **self.procedural())
            except DatasetError as error:
                raise EvalError(f"procedural problems: {error}") from None

    def procedural(self) -> dict[str, Any]:
        """The keyword arguments of ``generate_problems`` for the procedural problems."""
        d = self.difficulty
        difficulty = tuple(d) if isinstance(d, list) else d  # generate_problems takes a pair
        families = {"families": self.families} if self.families else {}
        return {"seed": self.procedural_seed, "difficulty": difficulty, **families}


# Its name until 2026-12, when it clashed with config.EvalConfig.
__getattr__ = forwarding(
    __name__, moved={"EvalConfig": "seele_agents.evaluation.command:EvalCommandConfig"}
)


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


# --- the output folder: fingerprint -------------------------------------------------------------


def fingerprint(config: EvalCommandConfig, model: str, dtype: str) -> dict[str, Any]:
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
    config: EvalCommandConfig, *, overwrite: bool = False, progress: bool = True, echo: Any = print
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
        from seele_agents.training.checkpoint import latest_checkpoint

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


def load_problem_sets(config: EvalCommandConfig) -> dict[str, ProblemSet]:
    """Each dataset's problems (``config.limit`` first ones), before any model is loaded."""
    from seele_env.loaders import DATASETS, ProblemSet, load_problems
    from seele_env.procedural import generate_problems

    sets = {}
    for name in config.datasets:
        if name == "procedural":
            limit = config.limit or PROCEDURAL_DEFAULT_LIMIT
            sets[name] = ProblemSet(generate_problems(limit, **config.procedural()))
        elif _is_file_dataset(name):
            sets[name] = load_problems("file", data_path=name, split=config.split,
                                       limit=config.limit)  # fmt: skip
        else:
            spec = DATASETS.get(name)
            split = config.split or (("test" if "test" in spec.splits else None) if spec else None)
            path = _data_path(config, name) if spec else config.data_path  # hub ids: no dir
            sets[name] = load_problems(name, data_path=path, split=split, limit=config.limit)
    return sets


def _data_path(config: EvalCommandConfig, name: str) -> str | None:
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


def make_rendering(config: EvalCommandConfig, tokenizer: Any, template: str) -> Rendering:
    """The rendering options of ``seele eval`` (``template`` resolved from ``auto``): the same
    :class:`~seele_env.hints.Rendering` a training env takes."""
    return Rendering(config.hint_unit, config.placement, template, tokenizer, config.system_prompt)


def make_envs(
    problem_sets: Mapping[str, ProblemSet],
    config: EvalCommandConfig,
    tokenizer: Any,
    template: str,
    verifier: Any,
) -> dict[str, MathHintEnv]:
    """One env per dataset, all rendering alike and sharing one verifier."""
    from seele_env.env import MathHintEnv

    rendering = make_rendering(config, tokenizer, template)
    return {
        name: MathHintEnv(problems=ps, rendering=rendering, verifier=verifier)
        for name, ps in problem_sets.items()
    }


def make_generator(config: EvalCommandConfig, model: Any, tokenizer: Any) -> Generator:
    """The backend ``config.backend`` names; one forward batch holds a whole call."""
    if config.backend == "vllm":
        from seele_agents.generation.vllm import VLLMGenerator

        return VLLMGenerator(model, tokenizer, seed=config.seed)
    from seele_agents.generation import TransformersGenerator

    per_call = config.batch_size * max(1, config.samples)
    return TransformersGenerator(model, tokenizer, batch_size=per_call, seed=config.seed)


# --- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele eval``: :class:`EvalCommandConfig`'s fields, and how to run."""
    add_options(parser, EvalCommandConfig)
    parser.add_argument(
        "--overwrite", action="store_true", help="discard the results already in --output-dir"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")


def config_from_args(args: argparse.Namespace) -> EvalCommandConfig:
    """The :class:`EvalCommandConfig` of parsed ``seele eval`` options."""
    return options_from_args(EvalCommandConfig, args)


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
