"""Evaluate a model on math sets: greedy pass@1, avg@k and unbiased pass@k, at pinned hint rates.

    seele eval --model tiny --dataset procedural --hint-rates 0,0.5,1 --samples 4
    seele eval --model runs/seele/checkpoints/step-00000030 --dataset math500 aime24 \\
        --data-dir ../shared/data --samples 8

Every (dataset, hint rate) pair is a *cell*. Each problem of a cell gets one greedy completion
and, with ``--samples K``, K sampled ones; each completion is scored by the env (``reset`` with
the rate pinned, then ``step``: math-verify under the env's time limit). :func:`summarise`
turns a cell's per-problem records into its metrics (docs/evaluation.md):

* greedy pass@1: the fraction of problems whose greedy completion is right;
* avg@K: the mean correctness of the K samples (it equals the unbiased pass@1);
* pass@k for k = 1, 2, 4, ... and K: :func:`pass_at_k`, the unbiased estimator of Chen et al.
  (2021), averaged over problems.

:func:`run_eval` reads top to bottom: settings (:class:`EvalConfig`), the output folder
(:func:`prepare_output_dir`: fingerprint and resume), problems, model, :func:`evaluate_model`,
outputs. Results are appended to ``results.jsonl`` after every batch, so a run that was killed,
started again with the same command, generates only what is missing.

Only the standard library is imported at module level: the ``seele`` command imports this
module to build its parser, and ``seele --help`` should not wait for torch.

Example:
    >>> round(pass_at_k(5, 2, 2), 12)
    0.7
    >>> pass_at_k_ks(6)
    [1, 2, 4, 6]
    >>> records = [{"greedy": {"correct": True, "tokens": 10, "finish_reason": "stop"},
    ...             "samples": {"correct": [True, False], "tokens": [12, 8],
    ...                         "finish_reasons": ["stop", "length"]},
    ...             "realised_hint_rate": 0.0}] * 2
    >>> summary = summarise(records)
    >>> summary["greedy/pass@1"], summary["sampled/avg@2"], summary["sampled/pass@2"]
    (1.0, 0.5, 1.0)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seele_agents.generation import Generator, Sample, SamplingParams
    from seele_env.env import MathHintEnv
    from seele_env.loaders import ProblemSet

RESULTS_FILE = "results.jsonl"
"""One JSON line per (dataset, hint rate, problem), appended after every batch."""
CONFIG_FILE = "eval_config.json"
"""The settings fingerprint; a rerun in the folder must match it to resume."""
SUMMARY_FILE = "summary.json"
TABLE_FILE = "results.md"
CURVE_FILE = "hint_curve.png"
OUTPUT_FILES = (RESULTS_FILE, CONFIG_FILE, SUMMARY_FILE, TABLE_FILE, CURVE_FILE)

NO_SOLUTIONS = "n/a (no solutions)"
"""What a cell shows when no problem of the dataset has a reference solution to cut a hint from."""
DATA_DIR_NAMES = {"minerva": ("minerva", "minerva_math")}
"""Sub-folder names tried in ``--data-dir`` for a dataset (the shared data calls one
``minerva_math``); every other dataset's folder has its own name."""
PROCEDURAL_DEFAULT_LIMIT = 200
BACKENDS = ("transformers", "vllm")
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_FINGERPRINT_SKIP = ("device", "batch_size", "output_dir")  # change speed, not results


class EvalError(ValueError):
    """Bad evaluation settings or an output folder that cannot be used; the message says the fix."""


# --- the maths ------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    The probability that at least one of ``k`` samples drawn without replacement from the ``n``
    is correct: ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``,
    which never forms the (huge) binomial coefficients.

    Raises:
        ValueError: Unless ``0 <= c <= n`` and ``1 <= k <= n``.

    Example:
        >>> pass_at_k(10, 0, 4), pass_at_k(10, 7, 4), round(pass_at_k(4, 1, 2), 12)
        (0.0, 1.0, 0.5)
    """
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, c, k)):
        raise ValueError(f"pass_at_k needs ints, got n={n!r}, c={c!r}, k={k!r}.")
    if not 0 <= c <= n:
        raise ValueError(f"c={c} correct samples must be in 0..n={n}.")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in 1..n={n}: pass@k needs at least k samples.")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_ks(samples: int) -> list[int]:
    """The k reported for ``samples`` samples per problem: 1, 2, 4, ... up to it, and it."""
    ks = [2**i for i in range(samples.bit_length()) if 2**i <= samples]
    return [*ks, samples] if samples and ks[-1] != samples else ks


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of one cell from its per-problem records (the lines of ``results.jsonl``).

    Returns:
        ``n`` (problems), ``greedy/pass@1``, ``hint_rate/realised`` (mean ``l/|y|``),
        ``tokens/mean`` and ``tokens/truncated_fraction`` over every completion (greedy and
        sampled; forced hint tokens not counted), and with K > 0 samples per problem
        ``sampled/avg@K`` and ``sampled/pass@k`` for k in :func:`pass_at_k_ks`. No records:
        ``{"n": 0}``.

    Raises:
        ValueError: The records do not all carry the same number of samples.
    """
    if not records:
        return {"n": 0}
    counts = {len(r["samples"]["correct"]) for r in records}
    if len(counts) > 1:
        raise ValueError(f"records carry different numbers of samples {sorted(counts)}.")
    k_max = counts.pop()
    tokens = [r["greedy"]["tokens"] for r in records]
    reasons = [r["greedy"]["finish_reason"] for r in records]
    for r in records:
        tokens += r["samples"]["tokens"]
        reasons += r["samples"]["finish_reasons"]
    summary: dict[str, Any] = {
        "n": len(records),
        "greedy/pass@1": _mean(r["greedy"]["correct"] for r in records),
        "hint_rate/realised": _mean(r["realised_hint_rate"] for r in records),
        "tokens/mean": _mean(tokens),
        "tokens/truncated_fraction": _mean(reason == "length" for reason in reasons),
    }
    if k_max:
        correct = [sum(map(bool, r["samples"]["correct"])) for r in records]
        summary[f"sampled/avg@{k_max}"] = _mean(c / k_max for c in correct)
        for k in pass_at_k_ks(k_max):
            summary[f"sampled/pass@{k}"] = _mean(pass_at_k(k_max, c, k) for c in correct)
    return summary


def _mean(values: Any) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


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


# --- the output folder: fingerprint, resume file -------------------------------------------------


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
    _write_atomic(config_path, text + "\n")


def recover_records(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The records in ``path`` (none if it is missing), and a note when a partial last line
    (a run killed mid-write) was found; that line is cut off the file, so appending goes on
    from a clean line end.

    Raises:
        EvalError: A line before the last is not JSON (not something a kill produces).
    """
    if not path.is_file():
        return [], None
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, last = lines[:-1], lines[-1]  # `last` is b"" when the file ends with "\n"
    records, keep = [], 0
    for number, line in enumerate(complete, 1):
        try:
            if line.strip():
                records.append(json.loads(line))
        except ValueError:
            if number < len(complete) or last:
                raise EvalError(
                    f"line {number} of {path} is not valid JSON, so the file was not only cut "
                    "short by an interrupted run; pass --overwrite to start again."
                ) from None
            last = line + b"\n"  # an unparsable final line: treat it as partial too
            break
        keep += len(line) + 1
    if not last:
        return records, None
    with path.open("r+b") as f:
        f.truncate(keep)
        os.fsync(f.fileno())
    note = (f"ignored a partial last line of {path} ({len(last)} bytes, from an interrupted "
            "run); its problem is evaluated again")  # fmt: skip
    return records, note


def append_records(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Append records as JSON lines and force them to disk (``os.fsync``)."""
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- the evaluation loop -------------------------------------------------------------------------


@dataclass
class Cell:
    """One (dataset, hint rate) pair: the problems evaluated in it, and those left out."""

    dataset: str
    hint_rate: float
    problem_ids: list[str]
    left_out: int = 0  # problems without a reference solution, at a rate > 0


@dataclass
class EvalResult:
    """What :func:`evaluate_model` found.

    Attributes:
        cells: One summary per cell in plan order: ``dataset``, ``hint_rate``, the
            :func:`summarise` metrics, ``left_out`` and, for a cell with nothing to evaluate,
            ``skipped`` (:data:`NO_SOLUTIONS`).
        records: Every cell's per-problem records (earlier runs' included), in plan order.
        notes: What was skipped, left out or recovered.
        generated: Problems generated by this call (the rest came from ``results_path``).
        samples: K, the sampled completions per problem.
    """

    cells: list[dict[str, Any]]
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    generated: int = 0
    samples: int = 0


def plan_cells(
    envs: Mapping[str, MathHintEnv], hint_rates: Sequence[float]
) -> tuple[list[Cell], list[str]]:
    """The cells, dataset by dataset and rate by rate, and notes on what cannot be hinted."""
    cells, notes = [], []
    for name, env in envs.items():
        ids = list(env.problem_ids)
        hintable = [pid for pid in ids if env.problems.get(pid).has_solution]
        for rate in hint_rates:
            chosen = ids if rate == 0 else hintable
            cells.append(Cell(name, float(rate), chosen, len(ids) - len(chosen)))
            if rate > 0 and not hintable:
                notes.append(f"{name} at hint rate {rate:g}: skipped, {NO_SOLUTIONS} (the set "
                             "has answers only; its rate-0 cell is evaluated)")  # fmt: skip
            elif rate > 0 and len(hintable) < len(ids):
                notes.append(f"{name} at hint rate {rate:g}: {len(ids) - len(hintable)} of "
                             f"{len(ids)} problems left out (no reference solution)")  # fmt: skip
    return cells, notes


def evaluate_model(
    generator: Generator,
    envs: Mapping[str, MathHintEnv],
    *,
    hint_rates: Sequence[float] = (0.0,),
    samples: int = 0,
    max_new_tokens: int = 1024,
    temperature: float = 0.6,
    top_p: float = 0.95,
    batch_size: int = 16,
    seed: int = 0,
    results_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
    echo: Callable[[str], Any] = print,
) -> EvalResult:
    """Greedy (and K sampled) completions for every problem of every cell, scored by the envs.

    Args:
        generator: Any :class:`~seele_agents.generation.Generator`.
        envs: Dataset name -> a :class:`~seele_env.env.MathHintEnv` over its problems.
        hint_rates: The rates to pin; problems without a reference solution are left out of
            cells with a rate > 0 (a note says so).
        samples: K sampled completions per problem besides the greedy one.
        max_new_tokens: Most tokens per completion.
        temperature: Temperature of the sampled completions.
        top_p: Nucleus mass of the sampled completions.
        batch_size: Problems per generation call.
        seed: The generator's sampling RNG (``generator.rng``, when it has one) is reseeded
            from ``seed`` and the batch's cell and problems before each batch, so a batch's
            samples do not depend on what ran before it: a resumed run samples what an
            uninterrupted one would have.
        results_path: A ``results.jsonl`` to resume from and append to after every batch.
        progress: Show a tqdm progress bar.
        echo: Where notes go.
    """
    from seele_agents.generation import SamplingParams

    greedy = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    sampled = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    path = Path(results_path) if results_path is not None else None
    earlier, note = recover_records(path) if path is not None else ([], None)
    done = {_key(r): r for r in earlier}
    cells, notes = plan_cells(envs, hint_rates)
    notes = [note, *notes] if note else notes
    for line in notes:
        echo(f"note: {line}")
    todo = [(c, [p for p in c.problem_ids if (c.dataset, c.hint_rate, p) not in done])
            for c in cells]  # fmt: skip
    total = sum(len(ids) for _, ids in todo)
    if earlier:
        echo(f"resuming: {len(done)} results found in {path}, {total} problems to go")
    bar = _progress_bar(total, progress)
    try:
        for cell, ids in todo:
            bar.set_description(f"{cell.dataset} @ {cell.hint_rate:g}")
            for start in range(0, len(ids), batch_size):
                batch = ids[start : start + batch_size]
                _reseed(generator, _batch_seed(seed, cell.dataset, cell.hint_rate, batch))
                new = evaluate_batch(generator, envs[cell.dataset], cell.dataset, batch,
                                     cell.hint_rate, samples, greedy, sampled)  # fmt: skip
                if path is not None:
                    append_records(path, new)
                done.update((_key(r), r) for r in new)
                bar.update(len(batch))
    finally:
        bar.close()
    return _result(cells, done, notes, total, samples)


def evaluate_batch(
    generator: Generator,
    env: MathHintEnv,
    dataset: str,
    problem_ids: Sequence[str],
    hint_rate: float,
    samples: int,
    greedy: SamplingParams,
    sampled: SamplingParams,
) -> list[dict[str, Any]]:
    """One record per problem: two generation calls (greedy; all K samples of every problem)."""
    from seele_agents.rollout import _request

    options = [{"problem_id": pid, "hint_rate": hint_rate} for pid in problem_ids]
    resets = [env.reset(options=o) for o in options]
    requests = [_request(*reset) for reset in resets]
    greedy_out = _generate(generator, requests, greedy)
    sampled_out = _generate(generator, [q for q in requests for _ in range(samples)], sampled)
    records = []
    for i, (o, (_, info)) in enumerate(zip(options, resets, strict=True)):
        g = _score(env, o, greedy_out[i])
        ss = [_score(env, o, s) for s in sampled_out[i * samples : (i + 1) * samples]]
        records.append({
            "dataset": dataset, "hint_rate": hint_rate, "problem_id": o["problem_id"],
            "realised_hint_rate": info["hint_rate"], "hint_len": info["hint_len"],
            "n_units": info["n_units"], "answer": env.problems.get(o["problem_id"]).answer,
            "greedy": {**g, "text": greedy_out[i].text},
            "samples": {"correct": [s["correct"] for s in ss],
                        "tokens": [s["tokens"] for s in ss],
                        "finish_reasons": [s["finish_reason"] for s in ss]},
        })  # fmt: skip
    return records


def _generate(generator: Generator, requests: list[Any], params: SamplingParams) -> list[Sample]:
    if not requests:
        return []
    out = generator.generate(requests, params)
    if len(out) != len(requests):
        raise RuntimeError(
            f"{type(generator).__name__}.generate returned {len(out)} samples for "
            f"{len(requests)} requests; a generator must return one per request."
        )
    return out


def _score(env: MathHintEnv, options: dict[str, Any], sample: Sample) -> dict[str, Any]:
    env.reset(options=options)
    info = env.step(sample.text)[-1]
    return {
        "correct": bool(info["correct"]),
        "answer": info["extracted_answer"],
        "tokens": len(sample.completion_ids),
        "finish_reason": sample.finish_reason,
    }


def _key(record: Mapping[str, Any]) -> tuple[str, float, str]:
    return record["dataset"], float(record["hint_rate"]), record["problem_id"]


def _batch_seed(seed: int, dataset: str, hint_rate: float, ids: Sequence[str]) -> int:
    text = "\x00".join([dataset, repr(float(hint_rate)), *ids])
    return (seed * 2**32 + zlib.crc32(text.encode("utf-8"))) % 2**63


def _reseed(generator: Any, seed: int) -> None:
    manual_seed = getattr(getattr(generator, "rng", None), "manual_seed", None)
    if callable(manual_seed):
        manual_seed(seed)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="problem", dynamic_ncols=True)


def _result(
    cells: list[Cell], done: dict[Any, Any], notes: list[str], generated: int, samples: int
) -> EvalResult:
    summaries, records = [], []
    for cell in cells:
        rows = [done[(cell.dataset, cell.hint_rate, pid)] for pid in cell.problem_ids]
        summary = {"dataset": cell.dataset, "hint_rate": cell.hint_rate, **summarise(rows),
                   "left_out": cell.left_out}  # fmt: skip
        if not rows and cell.left_out:
            summary["skipped"] = NO_SOLUTIONS
        summaries.append(summary)
        records += rows
    return EvalResult(summaries, records, notes, generated, samples)


# --- reporting ------------------------------------------------------------------------------------


def format_table(cells: Sequence[Mapping[str, Any]], samples: int) -> str:
    """The cells as a markdown table (``results.md``). pass@1 of the samples is not a column:
    it equals avg@K."""
    ks = [k for k in pass_at_k_ks(samples) if k > 1]
    head = ["dataset", "n", "hint rate", "realised", "pass@1 (greedy)"]
    head += ([f"avg@{samples}"] if samples else []) + [f"pass@{k}" for k in ks]
    head += ["mean tokens", "truncated"]
    rows = [head, ["---"] * len(head)]
    for c in cells:
        row = [c["dataset"], str(c["n"]), f"{c['hint_rate']:g}"]
        if c.get("skipped"):
            rows.append(row + ["–", c["skipped"]] + ["–"] * (len(head) - 5))
            continue
        row += [f"{c['hint_rate/realised']:.3f}", f"{c['greedy/pass@1']:.3f}"]
        row += [f"{c[f'sampled/avg@{samples}']:.3f}"] if samples else []
        row += [f"{c[f'sampled/pass@{k}']:.3f}" for k in ks]
        row += [f"{c['tokens/mean']:.1f}", f"{c['tokens/truncated_fraction']:.2f}"]
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def format_curve(cells: Sequence[Mapping[str, Any]]) -> str:
    """Greedy pass@1 against hint rate, one line per dataset."""
    width = max(len(c["dataset"]) for c in cells)
    lines: dict[str, list[str]] = {}
    for c in cells:
        value = "n/a" if c.get("skipped") else f"{c['greedy/pass@1']:.3f}"
        lines.setdefault(c["dataset"], []).append(f"{c['hint_rate']:g}: {value}")
    return "accuracy vs hint rate (greedy pass@1):\n" + "".join(
        f"  {name:<{width}}  {'   '.join(points)}\n" for name, points in lines.items()
    )


def plot_hint_curve(
    cells: Sequence[Mapping[str, Any]], samples: int, path: str | os.PathLike[str]
) -> Path:
    """Accuracy against hint rate, one line per dataset (dashed: avg@K); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name in dict.fromkeys(c["dataset"] for c in cells):
        points = [c for c in cells if c["dataset"] == name and not c.get("skipped")]
        rates = [c["hint_rate"] for c in points]
        (line,) = ax.plot(rates, [c["greedy/pass@1"] for c in points], marker="o", label=name)
        if samples:
            ax.plot(rates, [c[f"sampled/avg@{samples}"] for c in points], linestyle="--",
                    marker=".", color=line.get_color(), label=f"{name} avg@{samples}")  # fmt: skip
    ax.set_xlabel("hint rate (share of the reference solution given)")
    ax.set_ylabel("accuracy (greedy pass@1)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(
    out: Path, result: EvalResult, settings: Mapping[str, Any], template: str, echo: Any = print
) -> None:
    """``summary.json``, ``results.md``, ``hint_curve.png`` (several rates); print the table."""
    summary = {"settings": settings, "template": template, "cells": result.cells,
               "notes": result.notes}  # fmt: skip
    _write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    table = format_table(result.cells, result.samples)
    _write_atomic(out / TABLE_FILE, table)
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
