"""Curricula compared at a matched rollout budget: one model, one start, each curriculum, seeds.

Every run is an ordinary ``seele train`` run in its own folder (config, metrics, checkpoints):
the same start model (one supervised warm-up, shared by all runs), the same training problems,
the same steps × problems × rounds × group size, so every curriculum spends exactly the same
number of rollouts; only ``curriculum.name`` and ``seed`` differ. The result is the held-out
accuracy (no hint, greedy) of each run, mean ± standard deviation over seeds per curriculum,
learning curves against rollouts spent (``curves.png``), a markdown table (``results.md``) and
everything as JSON (``results.json``).

    seele bench                                   # = seele bench curricula --preset hints
    seele bench curricula --preset smoke          # a minute: checks the plumbing only
    seele bench curricula --curricula none seele --seeds 0 1 2 3 --workers 2
    seele bench curricula --config my.yaml --set steps=200 --output-dir runs/bench-gsm8k

An interrupted benchmark resumes where it stopped when run again with the same options
(finished runs are read back, an unfinished one resumes from its last checkpoint). See
docs/benchmarks.md for the presets and measured results.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seele_agents.config import (
    REQUIRED,
    ConfigError,
    Options,
    Section,
    TrainConfig,
    add_options,
    config_from_dict,
    config_to_dict,
    load_config,
    option,
    options_from_args,
    require,
)
from seele_agents.files import atomic_folder, write_atomic

# label -> (curriculum name, options). Schedules are scaled to the run's length in `_options`.
LINEUP: dict[str, tuple[str, dict[str, Any]]] = {
    "none": ("none", {}),  # plain GRPO: no hint ever
    "fixed": ("fixed", {"hint_rate": 0.5}),
    "uft": ("uft", {}),  # cosine decay from the whole solution to none over the run
    "questa": ("questa", {}),  # 50% of the solution, then 25% from half-way
    "bisection": ("bisection", {}),
    "dynamic": ("dynamic", {}),  # DAPO-style: skip problems whose groups were all 0 or all 1
    "random": ("random", {}),  # a uniform random rate in [0, 1] per problem and round
    "seele": ("seele", {}),
    "seele-capped": ("seele", {"keep_answer_out": True}),  # never the last step (the answer)
}


def _check_curricula(key: str, curricula: list[str] | None) -> None:
    unknown = [c for c in curricula or [] if c not in LINEUP]
    close = difflib.get_close_matches(unknown[0], LINEUP, n=1) if unknown else []
    guess = f" Did you mean {close[0]!r}?" if close else ""
    rule = f"names unknown curricula {unknown}; choose from {list(LINEUP)}.{guess}"
    require(not unknown, key, curricula, rule)
    twice = curricula is not None and len(set(curricula)) != len(curricula)
    require(not twice, key, curricula, "names one twice; give each once.")


def _check_seeds(key: str, seeds: list[int] | None) -> None:
    ok = seeds is None or (bool(seeds) and len(set(seeds)) == len(seeds) and min(seeds) >= 0)
    require(ok, key, seeds, "must be distinct seeds >= 0.")


@dataclass(frozen=True)
class Preset(Section):
    """A named benchmark: what it changes in the training config, which curricula, which seeds."""

    description: str = option(REQUIRED, "What the preset measures, in one line.")
    overrides: list[str] = option(
        REQUIRED, "Training config overrides in --set syntax, over the CPU demo's defaults."
    )
    curricula: list[str] = option(REQUIRED, "Curricula compared: labels of LINEUP.")
    seeds: list[int] = option(REQUIRED, "One run per curriculum per seed.")

    def check(self) -> None:
        _check_curricula("curricula", self.curricula)
        _check_seeds("seeds", self.seeds)


PRESETS: dict[str, Preset] = {
    "cpu": Preset(
        description="tiny Llama, procedural arithmetic harder than its warm-up; every curriculum, "
        "3 seeds",
        overrides=[
            "steps=16",
            "problems_per_step=16",
            "eval.every_steps=4",
            "eval.num_problems=200",
            # The demo's settings before it moved to the running family (docs/benchmarks.md
            # was measured with these): arithmetic, a fixed 300-step warm-up, AdamW.
            "env.families=[arithmetic]",
            "env.difficulty=[1,2]",
            "sft.steps=300",
            "sft.lr=1e-3",
            "sft.difficulty=1",
            "sft.families=[arithmetic,linear,word]",
            "sft.target_step_accuracy=0",
            "curriculum.group_size=8",
            "optim.name=adamw",
            "optim.lr=2e-5",
            "optim.scheduler=constant",
            "eval.samples=0",
            "eval.hint_curve=false",
        ],
        curricula=list(LINEUP),
        seeds=[0, 1, 2],
    ),
    "hints": Preset(
        description="tiny Llama warmed up only part-way (per-step accuracy ~0.5), 5-step running "
        "totals it rarely finishes without a hint; every curriculum, 5 seeds",
        overrides=[
            "steps=20",
            "sft.target_step_accuracy=0.5",
            "sft.check_every=50",
            "eval.every_steps=10",
            "eval.samples=2",
            "eval.hint_curve=false",
        ],
        curricula=list(LINEUP),
        seeds=[0, 1, 2, 3, 4],
    ),
    "smoke": Preset(
        description="seconds per run: checks the plumbing, measures nothing",
        overrides=[
            "steps=2",
            "problems_per_step=2",
            "curriculum.num_rounds=2",
            "curriculum.group_size=2",
            "generation.max_new_tokens=16",
            "sft.steps=4",
            "sft.num_problems=16",
            "sft.batch_size=4",
            "env.num_problems=16",
            "eval.num_problems=4",
            "eval.every_steps=1",
            "checkpoint_every=1",
        ],
        curricula=["none", "seele"],
        seeds=[0, 1],
    ),
}


@dataclass(frozen=True)
class BenchOptions(Options):
    """What ``seele bench curricula`` runs: a preset, changed by these options."""

    preset: str = option(
        "hints",
        "The benchmark (docs/benchmarks.md): "
        + "; ".join(f"{name}: {preset.description}" for name, preset in PRESETS.items())
        + ".",
        choices=sorted(PRESETS),
    )
    config: str | None = option(None, "A YAML training config applied over the preset.")
    overrides: list[str] = option(
        [],
        "Override a training config field for every run, e.g. --set algo.beta=0.01 "
        "(repeatable; after the preset's and the file's).",
        cli={"flags": ("--set",), "action": "append", "metavar": "KEY=VALUE"},
    )
    curricula: list[str] | None = option(
        None,
        f"Curricula to compare, from {list(LINEUP)}; null = the preset's.",
        cli={"metavar": "NAME"},
    )
    seeds: list[int] | None = option(None, "Seeds, one run each; null = the preset's.")
    workers: int | None = option(
        None,
        "Runs trained at once, one process each; null = 2 on a machine with 2 or more cores, "
        "else 1.",
        ge=1,
    )
    threads: int = option(1, "Torch threads per worker.", ge=1)
    output_dir: str | None = option(None, "The benchmark's folder; null = runs/bench-<preset>.")

    def check(self) -> None:
        _check_curricula("curricula", self.curricula)
        _check_seeds("seeds", self.seeds)


@dataclass
class BenchSpec:
    """What a benchmark runs.

    Attributes:
        base: The training config every run starts from (``seed``, ``output_dir`` and
            ``curriculum.name`` are set per run).
        curricula: Labels from :data:`LINEUP`.
        seeds: One run per curriculum per seed.
        output_dir: The benchmark's folder: ``start/``, ``runs/<label>/seed-<s>/``, results.
        workers: Runs trained at the same time, each in its own process.
        threads: Torch threads per worker.
    """

    base: TrainConfig
    curricula: list[str]
    seeds: list[int]
    output_dir: Path
    workers: int = 1
    threads: int = 1
    preset: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rollouts_per_step(self) -> int:
        """Rollouts every run spends per training step (the matched budget's unit)."""
        c = self.base
        return c.problems_per_step * c.curriculum.num_rounds * c.curriculum.group_size


# --- statistics (pure) --------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0.0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_differences(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """Mean and sample sd of ``a[s] - b[s]`` over the seeds both have, and how many there are."""
    seeds = sorted(set(a) & set(b))
    mean, sd = mean_std([a[s] - b[s] for s in seeds])
    return mean, sd, len(seeds)


def average_shares(records: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean over ``records``, a key missing from a record counting as 0; keys are
    integers as text (solution units left, round numbers) and come out in numeric order.

    Example:
        >>> average_shares([{"1": 0.5, "5": 0.5}, {"1": 1.0}])
        {'1': 0.75, '5': 0.25}
    """
    keys = sorted({k for r in records for k in r}, key=int)
    return {k: sum(r.get(k, 0.0) / len(records) for r in records) for k in keys}


def _key_means(records: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean over the records that have the key, keys in numeric order."""
    keys = sorted({k for r in records for k in r}, key=int)
    return {k: mean_std([r[k] for r in records if k in r])[0] for k in keys}


def confidence_interval(mean: float, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of a mean from ``n`` values: ``mean ± t(level, n-1)·sd/√n``.

    NaN bounds when ``n < 2`` (no spread to go on).

    Example:
        >>> low, high = confidence_interval(0.10, 0.05, 5)  # t(0.975, 4) = 2.776
        >>> round(low, 4), round(high, 4)
        (0.0379, 0.1621)
    """
    if n < 2 or math.isnan(mean):
        return math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_comparison(a: dict[Any, float], b: dict[Any, float]) -> dict[str, float]:
    """``a - b`` paired by seed: mean, sd, n and the 95% interval of the mean difference."""
    mean, sd, n = paired_differences(a, b)
    low, high = confidence_interval(mean, sd, n)
    return {"mean": mean, "sd": sd, "n": n, "low": low, "high": high}


# --- running ------------------------------------------------------------------------------------


def run_folder(spec: BenchSpec, label: str, seed: int) -> Path:
    """Where the run of ``label`` with ``seed`` lives."""
    return spec.output_dir / "runs" / label / f"seed-{seed}"


def _options(label: str, steps: int) -> tuple[str, dict[str, Any]]:
    """The curriculum and its options, schedules spanning the run's ``steps``."""
    name, options = LINEUP[label]
    options = dict(options)
    if name == "uft":
        options.setdefault("horizon", max(1, steps))
    if name == "questa":
        options.setdefault("boundaries", [max(1, steps // 2)])
    return name, options


def run_config(spec: BenchSpec, label: str, seed: int, start: Path | None) -> Any:
    """The training config of one run: the base, from the shared start, one curriculum."""
    data = config_to_dict(spec.base)
    name, options = _options(label, spec.base.steps)
    data["curriculum"].update(name=name, options=options)
    data.update(seed=seed, output_dir=str(run_folder(spec, label, seed)))
    data["log"].update(progress=False, plot=False)
    if start is not None:  # the shared warm-up replaces each run's own
        data["model"]["name"] = str(start)
        data["sft"]["steps"] = 0
    return config_from_dict(TrainConfig, data, source=f"bench run {label}/seed-{seed}")


def prepare_start(spec: BenchSpec, echo: Any = print) -> Path | None:
    """The shared start model: the base model after its warm-up, saved once (``start/``).

    Returns ``None`` when the base config has no warm-up (runs then load ``model.name``).
    """
    config = spec.base
    if config.sft.steps == 0:
        return None
    folder = spec.output_dir / "start"
    if (folder / "config.json").exists():
        return folder
    import torch

    from seele_agents.models import load_model, save_merged
    from seele_agents.training.build import seed_everything
    from seele_agents.training.sft import warm_up

    torch.set_num_threads(spec.threads)
    seed_everything(config.seed)
    mc = config.model
    model, tokenizer = load_model(
        mc.name, dtype=mc.dtype, device=mc.device, revision=mc.revision, seed=config.seed
    )
    started = time.perf_counter()
    warm_up(config, model, tokenizer, spec.output_dir / "start-sft", fresh=True, echo=echo)
    with atomic_folder(folder) as tmp:
        save_merged(model, tokenizer, tmp)
    shutil.rmtree(spec.output_dir / "start-sft", ignore_errors=True)
    spec.timings["start_s"] = time.perf_counter() - started
    return folder


def _train_one(config: Any, threads: int) -> dict[str, Any]:
    """Train one run (in a worker process or here); returns its summary."""
    import torch
    from transformers.utils import logging as hf_logging

    from seele_agents.training.checkpoint import latest_checkpoint
    from seele_agents.training.loop import train

    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()  # a loading bar per run would bury the benchmark's lines
    out = Path(config.output_dir)
    done = out / "bench_summary.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    resume = None
    if latest_checkpoint(out) is not None:
        resume = "latest"
    elif out.exists():  # started but never checkpointed: start that run again
        shutil.rmtree(out)
    started = time.perf_counter()
    summary = train(config, resume=resume, echo=lambda *a, **k: None)
    summary["seconds"] = time.perf_counter() - started
    summary["resumed"] = resume is not None
    write_atomic(done, json.dumps(summary, indent=1))
    return summary


def run_bench(spec: BenchSpec, echo: Any = print) -> dict[str, Any]:
    """Train every (curriculum, seed) run not finished yet, then collect and write the results."""
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    start = prepare_start(spec, echo)
    jobs = [(label, seed) for seed in spec.seeds for label in spec.curricula]
    configs = {job: run_config(spec, *job, start) for job in jobs}
    echo(
        f"{len(jobs)} runs ({len(spec.curricula)} curricula × {len(spec.seeds)} seeds), "
        f"{spec.base.steps} steps × {spec.rollouts_per_step} rollouts each, "
        f"{spec.workers} at a time"
    )
    finished = 0

    def report(job: tuple[str, int], summary: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        echo(
            f"  [{finished}/{len(jobs)}] {job[0]:>9} seed {job[1]}: held-out "
            f"{summary['accuracy_before']:.3f} -> {summary['accuracy_after']:.3f} "
            f"({summary['seconds']:.0f} s)"
        )

    if spec.workers <= 1:
        for job in jobs:
            report(job, _train_one(configs[job], spec.threads))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(spec.workers, mp_context=context) as pool:
            futures = {pool.submit(_train_one, configs[j], spec.threads): j for j in jobs}
            for future in as_completed(futures):
                report(futures[future], future.result())
    spec.timings["wall_s"] = time.perf_counter() - started
    results = collect(spec)
    write_results(spec, results)
    return results


# --- results ------------------------------------------------------------------------------------


def _run_figures(folder: Path, per_step: int) -> dict[str, Any]:
    """One finished run's figures, from its ``bench_summary.json`` and ``metrics.jsonl``."""
    from seele_agents.training.tracking import read_metrics

    summary = json.loads((folder / "bench_summary.json").read_text(encoding="utf-8"))
    records = read_metrics(folder / "metrics.jsonl")
    steps = [r for r in records if "reward/accuracy" in r]
    last = steps[-max(1, len(steps) // 4) :]  # the last quarter of the run

    def series(key: str, rows: list[dict[str, Any]]) -> list[list[float]]:
        return [[r["step"] * per_step, r[key]] for r in rows if r.get(key) is not None]

    def by_suffix(prefix: str) -> list[dict[str, float]]:
        return [
            {k.removeprefix(prefix): v for k, v in r.items() if k.startswith(prefix)} for r in steps
        ]

    return {
        "accuracy_before": summary["accuracy_before"],
        "accuracy_after": summary["accuracy_after"],
        "sampled_before": summary.get("accuracy_sampled_before", math.nan),
        "sampled_after": summary.get("accuracy_sampled_after", math.nan),
        "seconds": summary["seconds"],
        "curve": series("eval/accuracy", records),
        "curve_sampled": series("eval/accuracy_sampled", records),
        "hint_rate": series("curriculum/hint_rate", steps),
        "train_accuracy": series("reward/accuracy", steps),
        "mixed": series("curriculum/mixed_rounds", steps),
        "train_accuracy_last": mean_std([r["reward/accuracy"] for r in last])[0],
        "hint_rate_mean": mean_std([r["curriculum/hint_rate"] for r in steps])[0],
        # Rounds (n rollouts of one problem at one rate) whose outcomes disagree.
        "mixed_share": mean_std([r.get("curriculum/mixed_rounds", math.nan) for r in steps])[0],
        # units of the solution left to do -> share of rollouts; round -> training accuracy
        "units_left": average_shares(by_suffix("curriculum/units_left_")),
        "round_accuracy": _key_means(by_suffix("curriculum/accuracy_round")),
        "step_s": mean_std([r["time/step_s"] for r in steps])[0],
    }


def collect(spec: BenchSpec) -> dict[str, Any]:
    """Per-run figures and per-curriculum statistics, read back from the runs' folders."""
    per_step = spec.rollouts_per_step
    curricula: dict[str, Any] = {}
    for label in spec.curricula:
        runs = {}
        for seed in spec.seeds:
            folder = run_folder(spec, label, seed)
            if (folder / "bench_summary.json").exists():
                runs[str(seed)] = _run_figures(folder, per_step)  # str: as in results.json
        values = list(runs.values())
        curricula[label] = {
            "runs": runs,
            "accuracy_after": mean_std([r["accuracy_after"] for r in values]),
            "gain": mean_std([r["accuracy_after"] - r["accuracy_before"] for r in values]),
            "sampled_after": mean_std([r["sampled_after"] for r in values]),
            "sampled_gain": mean_std([r["sampled_after"] - r["sampled_before"] for r in values]),
            "train_accuracy_last": mean_std([r["train_accuracy_last"] for r in values]),
            "hint_rate_mean": mean_std([r["hint_rate_mean"] for r in values])[0],
            "mixed_share": mean_std([r["mixed_share"] for r in values])[0],
            "units_left": average_shares([r["units_left"] for r in values]),
            "round_accuracy": _key_means([r["round_accuracy"] for r in values]),
            "step_s": mean_std([r["step_s"] for r in values])[0],
        }
    comparisons, sampled = {}, {}
    if "none" in curricula:
        runs = curricula["none"]["runs"]
        base = {s: r["accuracy_after"] for s, r in runs.items()}
        base_sampled = {s: r["sampled_after"] for s, r in runs.items()}
        for label, c in curricula.items():
            if label != "none":
                mine = {s: r["accuracy_after"] for s, r in c["runs"].items()}
                comparisons[label] = paired_comparison(mine, base)
                mine = {s: r["sampled_after"] for s, r in c["runs"].items()}
                sampled[label] = paired_comparison(mine, base_sampled)
    return {
        "preset": spec.preset,
        "rollouts_per_run": spec.base.steps * per_step,
        "rollouts_per_step": per_step,
        "steps": spec.base.steps,
        "seeds": spec.seeds,
        "eval_problems": spec.base.eval.num_problems,
        "eval_samples": spec.base.eval.samples,
        "curricula": curricula,
        "minus_none": comparisons,
        "minus_none_sampled": sampled,
        "timings": spec.timings,
        "config": config_to_dict(spec.base),
    }


def _pm(pair: Sequence[float], digits: int = 3) -> str:
    mean, sd = pair
    return "—" if math.isnan(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _diff(c: dict[str, float] | None) -> str:
    if c is None:
        return "—"
    if math.isnan(c["low"]):
        return f"{c['mean']:+.3f}"
    return f"{c['mean']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def format_table(results: dict[str, Any]) -> str:
    """The markdown tables: one row per curriculum (statistics over seeds), then per seed."""
    k = results.get("eval_samples", 0)
    lines = [
        f"{results['steps']} steps × {results['rollouts_per_step']} rollouts = "
        f"{results['rollouts_per_run']:,} rollouts per run; seeds {results['seeds']}; held-out "
        f"= {results['eval_problems']} problems, no hint; greedy and avg@{k} (sampled at the "
        "training temperature); mean ± sd over seeds; minus none = paired by seed, mean "
        "[95% t-interval].",
        "",
        f"| curriculum | greedy after | gain | minus none | avg@{k} after | gain "
        "| minus none | mixed rounds | hint rate | rollouts by steps left to do "
        "| training accuracy by round | s/step |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|---|---|---:|",
    ]
    for label, c in results["curricula"].items():
        left = " ".join(f"{u}:{share:.2f}" for u, share in c["units_left"].items())
        lines.append(
            f"| {label} | {_pm(c['accuracy_after'])} | {_pm(c['gain'])} "
            f"| {_diff(results['minus_none'].get(label))} | {_pm(c['sampled_after'])} "
            f"| {_pm(c['sampled_gain'])} | {_diff(results['minus_none_sampled'].get(label))} "
            f"| {c['mixed_share']:.2f} | {c['hint_rate_mean']:.2f} | {left} "
            f"| {' / '.join(f'{a:.2f}' for a in c['round_accuracy'].values())} "
            f"| {c['step_s']:.1f} |"
        )
    lines += ["", "Per seed, held-out greedy before → after (sampled after):", ""]
    lines += ["| curriculum | " + " | ".join(f"seed {s}" for s in results["seeds"]) + " |"]
    lines += ["|---|" + "---|" * len(results["seeds"])]
    for label, c in results["curricula"].items():
        cells = []
        for seed in results["seeds"]:
            r = c["runs"].get(str(seed))
            cells.append(
                "—"
                if r is None
                else f"{r['accuracy_before']:.3f}→{r['accuracy_after']:.3f} "
                f"({r['sampled_after']:.3f})"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    """Held-out accuracy (greedy, sampled), training accuracy, mixed groups and hint rate
    against rollouts spent, mean ± sd bands over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = (
        ("curve", "held-out accuracy (no hint, greedy)"),
        ("curve_sampled", "held-out avg@k (no hint, sampled)"),
        ("train_accuracy", "training accuracy (with hints)"),
        ("mixed", "rounds with mixed outcomes"),
        ("hint_rate", "mean hint rate"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.4))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for label, c in results["curricula"].items():
            series = [r.get(key) for r in c["runs"].values() if r.get(key)]
            if not series:
                continue
            n = min(len(s) for s in series)
            x = np.array([p[0] for p in series[0][:n]])
            y = np.array([[p[1] for p in s[:n]] for s in series])
            mean, sd = y.mean(0), y.std(0, ddof=1) if len(y) > 1 else np.zeros(n)
            (line,) = ax.plot(x, mean, label=label, lw=2 if label.startswith("seele") else 1.2)
            ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.12)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("rollouts")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_hints(results: dict[str, Any], path: Path) -> Path:
    """The realised hints as a histogram: share of training rollouts by solution units left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    curricula = results["curricula"]
    units = sorted({int(u) for c in curricula.values() for u in c["units_left"]})
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * max(1, len(units)) * 1.6, 3.4))
    width = 0.8 / max(1, len(curricula))
    for i, (label, c) in enumerate(curricula.items()):
        shares = [c["units_left"].get(str(u), 0.0) for u in units]
        ax.bar(np.arange(len(units)) + i * width, shares, width, label=label)
    ax.set_xticks(np.arange(len(units)) + 0.4 - width / 2, [str(u) for u in units])
    ax.set_xlabel("solution steps left to do (0 = the whole solution, answer included, given)")
    ax.set_ylabel("share of training rollouts")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(spec: BenchSpec, results: dict[str, Any]) -> None:
    """``results.json``, ``results.md`` and ``curves.png`` in the benchmark's folder."""
    out = spec.output_dir
    write_atomic(out / "results.json", json.dumps(results, indent=1))
    write_atomic(out / "results.md", format_table(results) + "\n")
    plot_curves(results, out / "curves.png")
    plot_hints(results, out / "hints.png")


# --- command line -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele bench curricula``: :class:`BenchOptions`' fields, and
    ``--overwrite``."""
    add_options(parser, BenchOptions)
    parser.add_argument(
        "--overwrite", action="store_true", help="delete earlier runs in --output-dir first"
    )


def spec_from_args(args: argparse.Namespace) -> BenchSpec:
    """Check the options and build the :class:`BenchSpec` (a :class:`ConfigError` names a bad
    one)."""
    options = options_from_args(BenchOptions, args)
    preset = PRESETS[options.preset]
    return BenchSpec(
        base=load_config(options.config, [*preset.overrides, *options.overrides]),
        curricula=list(options.curricula or preset.curricula),
        seeds=list(options.seeds if options.seeds is not None else preset.seeds),
        output_dir=Path(options.output_dir or f"runs/bench-{options.preset}"),
        workers=options.workers or min(2, os.cpu_count() or 1),
        threads=options.threads,
        preset=options.preset,
    )


def run(args: argparse.Namespace) -> int:
    """``seele bench curricula``: returns the exit status."""
    try:
        spec = spec_from_args(args)
    except (ValueError, ConfigError, FileNotFoundError) as error:
        print(f"seele bench: error: {error}", file=sys.stderr)
        return 2
    if args.overwrite and spec.output_dir.exists():
        shutil.rmtree(spec.output_dir)
    try:
        results = run_bench(spec)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print()
    print(format_table(results))
    for label, c in results["minus_none"].items():
        if label.startswith("seele"):
            print(f"\n{label} minus plain GRPO, held-out greedy, paired by seed (n = {c['n']}): "
                  f"{_diff(c)}; positive = SEELE ahead.")  # fmt: skip
    out = spec.output_dir
    print(f"\nresults: {out / 'results.md'}, plots: {out / 'curves.png'}, {out / 'hints.png'}")
    return 0
