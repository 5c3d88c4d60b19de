"""Controller benchmark: every curriculum on the same synthetic learners at the same budget.

Each curriculum drives a fresh :class:`~seele_env.simulate.SyntheticLearner` built from the same
seed (same problems, same hidden curves) through the grouping API: every training step it draws
``batch_size`` problems, runs ``num_rounds`` rounds of ``group_size`` rollouts on each, and the
learner then learns from all the step's groups. All curricula therefore spend the same number of
rollouts. Because the learner's curves are known, the benchmark reports the *true* expected
accuracy at each chosen rate, not only the observed one.

Run it with ``python -m seele_env.curricula.compare`` (``--help`` lists the options).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seele_env.curricula import make_curriculum
from seele_env.simulate import SyntheticEnv, SyntheticLearner

# (label, curriculum name, options); the schedules' lengths are filled in from the run's steps.
DEFAULT_CURRICULA: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("seele", "seele", {}),
    ("bisection", "bisection", {}),
    ("fixed-0.25", "fixed", {"hint_rate": 0.25}),
    ("fixed-0.5", "fixed", {"hint_rate": 0.5}),
    ("fixed-0.75", "fixed", {"hint_rate": 0.75}),
    ("uft", "uft", {}),
    ("questa", "questa", {}),
    ("random", "random", {}),
    ("dynamic", "dynamic", {}),
    ("none", "none", {}),
)


@dataclass
class BenchConfig:
    """One benchmark run.

    Attributes:
        units: ``"tokens"`` (|y| in the hundreds) or ``"steps"`` (|y| <= 5).
        num_problems: Size of the synthetic problem population.
        steps: Training steps per curriculum.
        batch_size: Problems per training step.
        num_rounds: ``m``, rounds per problem per step (every curriculum gets the same).
        group_size: ``n``, rollouts per round.
        target_accuracy: The accuracy the adaptive curricula aim at, and the reference of the
            error columns.
        learn_scale: Multiplies the learner's default learning rates. The default 0.2 over 100
            steps lifts no-hint accuracy about as much as 1.0 over 20 steps, with a fifth of
            the drift of each problem's curve between two of its visits.
        seed: Seed of the population, the sampling and the curricula.
    """

    units: str = "tokens"
    num_problems: int = 1000
    steps: int = 100
    batch_size: int = 250
    num_rounds: int = 4
    group_size: int = 8
    target_accuracy: float = 0.5
    learn_scale: float = 0.2
    seed: int = 0


@dataclass
class CurriculumResult:
    """What one curriculum did; per-round lists are indexed by round (0 = round 1)."""

    label: str
    rollouts: int = 0
    median_abs_error: list[float] = field(default_factory=list)
    within_0_1: list[float] = field(default_factory=list)
    observed_accuracy: list[float] = field(default_factory=list)
    mixed_groups: list[float] = field(default_factory=list)
    revisit_median_abs_error: list[float] = field(default_factory=list)
    revisit_observed_accuracy: float = float("nan")
    no_hint_accuracy: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)
    mean_hint_rate: list[float] = field(default_factory=list)
    seconds: float = 0.0


def run_curriculum(
    config: BenchConfig, label: str, name: str, options: dict[str, Any]
) -> CurriculumResult:
    """Train a fresh synthetic learner under one curriculum and measure it."""
    learner = SyntheticLearner(
        config.num_problems, units=config.units, seed=config.seed,
        own_rate=0.1 * config.learn_scale, transfer_rate=0.018 * config.learn_scale,
    )  # fmt: skip
    env = SyntheticEnv(learner)
    options = {**_schedule_defaults(name, config), **options}
    curriculum = make_curriculum(
        name, env, num_rounds=config.num_rounds, group_size=config.group_size,
        seed=config.seed, **options,
    )  # fmt: skip
    rounds = config.num_rounds
    errors: list[list[np.ndarray]] = [[] for _ in range(rounds)]
    revisit_errors: list[list[np.ndarray]] = [[] for _ in range(rounds)]
    observed: list[list[np.ndarray]] = [[] for _ in range(rounds)]
    revisit_observed: list[np.ndarray] = []
    seen: set[str] = set()
    result = CurriculumResult(label, no_hint_accuracy=[learner.no_hint_accuracy()])
    start = time.perf_counter()
    for _ in range(config.steps):
        problem_ids = curriculum.sample_problems(config.batch_size)
        idx = learner.index(problem_ids)
        revisit = np.array([pid in seen for pid in problem_ids])
        seen.update(problem_ids)
        step_rates, step_outcomes = [], []
        for r in range(rounds):
            rates = curriculum.hint_rates(problem_ids)
            true_accuracy = learner.accuracy(idx, rates)
            outcomes = learner.sample(idx, rates, config.group_size)
            curriculum.record(problem_ids, outcomes)
            error = np.abs(true_accuracy - config.target_accuracy)
            errors[r].append(error)
            revisit_errors[r].append(error[revisit])
            observed[r].append(outcomes.mean(axis=1))
            revisit_observed.append(outcomes[revisit].mean(axis=1))
            step_rates.append(rates)
            step_outcomes.append(outcomes)
        curriculum.end_step()
        all_outcomes = np.concatenate(step_outcomes)
        learner.learn(np.tile(idx, rounds), np.concatenate(step_rates), all_outcomes)
        result.rollouts += all_outcomes.size
        result.batch_accuracy.append(float(all_outcomes.mean()))
        result.mean_hint_rate.append(float(np.concatenate(step_rates).mean()))
        result.no_hint_accuracy.append(learner.no_hint_accuracy())
    result.seconds = time.perf_counter() - start
    for r in range(rounds):
        error, accuracy = np.concatenate(errors[r]), np.concatenate(observed[r])
        result.median_abs_error.append(float(np.median(error)))
        result.within_0_1.append(float(np.mean(error <= 0.1)))
        result.observed_accuracy.append(float(accuracy.mean()))
        result.mixed_groups.append(float(np.mean((accuracy > 0) & (accuracy < 1))))
        later = np.concatenate(revisit_errors[r])
        result.revisit_median_abs_error.append(float(np.median(later)) if later.size else np.nan)
    later_observed = np.concatenate(revisit_observed)
    if later_observed.size:
        result.revisit_observed_accuracy = float(later_observed.mean())
    return result


def run_benchmark(
    config: BenchConfig,
    curricula: Sequence[tuple[str, str, dict[str, Any]]] = DEFAULT_CURRICULA,
) -> list[CurriculumResult]:
    """Run every curriculum of ``curricula`` (label, registered name, options) on ``config``."""
    return [run_curriculum(config, label, name, dict(opts)) for label, name, opts in curricula]


def _schedule_defaults(name: str, config: BenchConfig) -> dict[str, Any]:
    """Schedules span the run: UFT decays over all steps, QuestA switches halfway."""
    if name == "uft":
        return {"horizon": config.steps}
    if name == "questa":
        return {"boundaries": (max(1, config.steps // 2),)}
    if name in ("seele", "bisection"):
        return {"target_accuracy": config.target_accuracy}
    return {}


def format_table(config: BenchConfig, results: Sequence[CurriculumResult]) -> str:
    """A markdown table, one row per curriculum; ``a/b/c/d`` cells are rounds 1..m."""

    def rounds(values: Sequence[float], digits: int = 2) -> str:
        return "/".join(f"{v:.{digits}f}" for v in values)

    last = config.num_rounds - 1
    lines = [
        f"units={config.units}, {config.num_problems} problems, {config.steps} steps x "
        f"{config.batch_size} problems x {config.num_rounds} rounds x {config.group_size} "
        f"rollouts, target {config.target_accuracy}, learn_scale {config.learn_scale}, "
        f"seed {config.seed}",
        "",
        f"| curriculum | median abs err, per round | same, r{last + 1} after 1st visit "
        "| within 0.1, per round | observed acc, per round | observed acc after 1st visit "
        "| mixed groups, per round | rollouts | no-hint acc start / middle / end |",
        "|---|---|---:|---|---|---:|---|---:|---|",
    ]
    for res in results:
        curve = res.no_hint_accuracy
        lines.append(
            f"| {res.label} | {rounds(res.median_abs_error, 3)} "
            f"| {res.revisit_median_abs_error[last]:.3f} | {rounds(res.within_0_1)} "
            f"| {rounds(res.observed_accuracy)} | {res.revisit_observed_accuracy:.3f} "
            f"| {rounds(res.mixed_groups)} | {res.rollouts} "
            f"| {curve[0]:.3f} / {curve[len(curve) // 2]:.3f} / {curve[-1]:.3f} |"
        )
    return "\n".join(lines)


def plot(config: BenchConfig, results: Sequence[CurriculumResult], path: Path) -> None:
    """Three panels: median |true accuracy - target| per round, no-hint accuracy and the
    observed batch accuracy per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    rounds = np.arange(1, config.num_rounds + 1)
    for res in results:
        axes[0].plot(rounds, res.median_abs_error, marker="o", label=res.label)
        axes[1].plot(res.no_hint_accuracy, label=res.label)
        axes[2].plot(np.arange(1, config.steps + 1), res.batch_accuracy, label=res.label)
    axes[0].set(xlabel="round", ylabel="median |true acc - target|", xticks=rounds)
    axes[1].set(xlabel="training step", ylabel="no-hint accuracy (true, population mean)")
    axes[2].axhline(config.target_accuracy, color="grey", linestyle=":")
    axes[2].set(xlabel="training step", ylabel="observed batch accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Hint curricula on synthetic learners ({config.units} units)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seele_env.curricula.compare``: run it, print the table, write JSON/PNG."""
    parser = argparse.ArgumentParser(
        prog="python -m seele_env.curricula.compare",
        description="Compare hint curricula on synthetic learners at a matched rollout budget.",
    )
    defaults = BenchConfig()
    parser.add_argument("--units", choices=("tokens", "steps"), nargs="+", default=["tokens"])
    for name in ("num_problems", "steps", "batch_size", "num_rounds", "group_size", "seed"):
        flag = f"--{name.replace('_', '-')}"
        parser.add_argument(flag, type=int, default=getattr(defaults, name))
    parser.add_argument("--target-accuracy", type=float, default=defaults.target_accuracy)
    parser.add_argument("--learn-scale", type=float, default=defaults.learn_scale)
    parser.add_argument(
        "--curricula", nargs="+", metavar="LABEL", default=None,
        help=f"subset of {[c[0] for c in DEFAULT_CURRICULA]} (default: all)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG here")
    args = parser.parse_args(argv)
    chosen = DEFAULT_CURRICULA
    if args.curricula:
        known = {c[0]: c for c in DEFAULT_CURRICULA}
        unknown = [c for c in args.curricula if c not in known]
        if unknown:
            parser.error(f"unknown curricula {unknown}; choose from {list(known)}")
        chosen = tuple(known[c] for c in args.curricula)
    report: dict[str, Any] = {}
    for units in args.units:
        config = BenchConfig(
            units=units, num_problems=args.num_problems, steps=args.steps,
            batch_size=args.batch_size, num_rounds=args.num_rounds,
            group_size=args.group_size, target_accuracy=args.target_accuracy,
            learn_scale=args.learn_scale, seed=args.seed,
        )  # fmt: skip
        results = run_benchmark(config, chosen)
        print(format_table(config, results), end="\n\n", flush=True)
        report[units] = {"config": asdict(config), "results": [asdict(r) for r in results]}
        if args.plot is not None:
            path = args.plot
            if len(args.units) > 1:
                path = path.with_name(f"{path.stem}-{units}{path.suffix}")
            plot(config, results, path)
            print(f"plot: {path}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, allow_nan=True))
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
