"""Where a step's time goes as m, n, batch size and response length grow: SEELE against plain GRPO.

    seele bench scaling                          # the default grid, a few minutes on 2 cores
    seele bench scaling --steps 4 --json scaling.json

Each *point* is one configuration of our training step (``collect_rollouts`` ->
``GRPOLearner.step``, exactly as :mod:`seele_agents.bench.speed` runs it, on the untrained tiny
model and the CPU demo's procedural problems), timed over ``steps`` steps after one warm-up step,
with the median step and the mean of each phase. Plain GRPO is the ``none`` curriculum in one round
of ``m * n`` rollouts; SEELE spends the same ``m * n`` rollouts per problem in ``m`` sequential
rounds of ``n``. The grid varies one thing at a time from a base point (8 problems, 32 rollouts
each, 64 new tokens), so a row's ratio to its GRPO twin shows what SEELE's rounds cost there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seele_agents.bench.speed import OUR_PHASES, SpeedConfig
from seele_agents.files import write_atomic
from seele_agents.options import ConfigError, Options, add_options, option, options_from_args

__all__ = [
    "Point",
    "ScalingConfig",
    "default_grid",
    "format_scaling",
    "run",
    "run_scaling",
    "time_point",
]


@dataclass(frozen=True)
class ScalingConfig(Options):
    """The grid of ``seele bench scaling``: its base point, and how each point is timed."""

    steps: int = option(2, "Timed steps per point, after one warm-up step.", ge=1)
    prompts: int = option(
        8, "Problems per step at the base point (the batch axis halves and doubles it).", ge=2
    )
    rollouts: int = option(
        32,
        "Rollouts per problem per step, m * n: a multiple of 8, as the rounds axis splits it "
        "into m = 1, 2, 4, 8 rounds.",
        ge=8,
    )
    max_new_tokens: int = option(
        64,
        "Most new tokens per completion at the base point (the length axis halves and doubles it).",
        ge=1,
    )
    threads: int = option(1, "Torch threads.", ge=1)

    def check(self) -> None:
        if self.rollouts % 8:  # named as the flag: only the command line sets it
            raise ConfigError(
                f"--rollouts {self.rollouts} must be a multiple of 8 (the grid splits it into "
                "m = 1, 2, 4, 8 rounds)."
            )


@dataclass(frozen=True)
class Point:
    """One configuration: the curriculum and the sizes of a step."""

    axis: str
    curriculum: str
    prompts: int
    rounds: int
    group_size: int
    max_new_tokens: int

    @property
    def label(self) -> str:
        name = "GRPO" if self.curriculum == "none" else "SEELE"
        return (f"{name} P={self.prompts} m={self.rounds} n={self.group_size} "
                f"T={self.max_new_tokens}")  # fmt: skip


def default_grid(prompts: int = 8, rollouts: int = 32, tokens: int = 64) -> list[Point]:
    """The base point, then one axis at a time: rounds (m at fixed m * n), batch size, length."""
    grid = [Point("rounds", "none", prompts, 1, rollouts, tokens)]
    for m in (1, 2, 4, 8):
        grid.append(Point("rounds", "seele", prompts, m, rollouts // m, tokens))
    for p in (prompts // 2, prompts * 2):
        grid += [Point("batch", "none", p, 1, rollouts, tokens),
                 Point("batch", "seele", p, 4, rollouts // 4, tokens)]  # fmt: skip
    for t in (tokens // 2, tokens * 2):
        grid += [Point("length", "none", prompts, 1, rollouts, t),
                 Point("length", "seele", prompts, 4, rollouts // 4, t)]  # fmt: skip
    return grid


def time_point(
    point: Point, steps: int, threads: int = 1, seed: int = 0, sft_steps: int = 0
) -> dict[str, Any]:
    """``steps`` timed steps (after one warm-up) of ``point``: median step, phase means, tokens."""
    import torch

    from seele_agents.bench.speed import OurSide, start_model

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        config = SpeedConfig(
            steps=steps, prompts=point.prompts, group_size=point.group_size, rounds=point.rounds,
            max_new_tokens=point.max_new_tokens, threads=threads, seed=seed,
            num_problems=max(512, 3 * point.prompts * point.rounds),
        )  # fmt: skip
        model, tokenizer = start_model(seed, sft_steps)
        ours = OurSide(config, model, tokenizer, curriculum=point.curriculum)
        for _ in range(steps + 1):
            ours.step()
    finally:
        torch.set_num_threads(before)
    timed = ours.records[1:]
    return {
        **asdict(point),
        "label": point.label,
        "step_s": statistics.median(r["time/step_s"] for r in timed),
        "phases_s": {
            name: statistics.fmean(r[key] for r in timed) for name, key in OUR_PHASES.items()
        },
        "completion_tokens_mean": statistics.fmean(
            r["rollout/completion_tokens_mean"] for r in timed
        ),
        "generated_tokens": statistics.fmean(
            r["rollout/completion_tokens_mean"] * r["completions"] for r in timed
        ),
        "hint_rate_mean": statistics.fmean(r["curriculum/hint_rate"] for r in timed),
    }


def run_scaling(points: list[Point], steps: int, threads: int = 1, echo: Any = print) -> list[dict]:
    """Time every point; each row gets ``vs_grpo``, its step time over its GRPO twin's (the
    ``none`` point of the same axis, batch size and length)."""
    rows = []
    for point in points:
        row = time_point(point, steps, threads)
        echo(f"  {row['label']:<32} {row['step_s']:.2f} s/step")
        rows.append(row)
    for row in rows:
        twin = next(
            (r for r in rows if r["curriculum"] == "none" and r["prompts"] == row["prompts"]
             and r["max_new_tokens"] == row["max_new_tokens"]),
            None,
        )  # fmt: skip
        row["vs_grpo"] = row["step_s"] / twin["step_s"] if twin else float("nan")
    return rows


def format_scaling(rows: list[dict]) -> str:
    """Markdown: one row per point, phases in seconds per step."""
    head = (
        "| axis | configuration | s/step | × GRPO | generation | verification | curriculum "
        "| reference | fwd/bwd | optimiser | tokens/completion | hint rate |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["phases_s"]
        lines.append(
            f"| {r['axis']} | {r['label']} | {r['step_s']:.2f} | {r['vs_grpo']:.2f} | "
            f"{p['generation']:.2f} | {p['verification']:.3f} | {p['curriculum']:.3f} | "
            f"{p['reference']:.3f} | {p['forward_backward']:.2f} | {p['optimizer']:.3f} | "
            f"{r['completion_tokens_mean']:.1f} | {r['hint_rate_mean']:.2f} |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele bench scaling``: :class:`ScalingConfig`'s fields, and ``--json``."""
    add_options(parser, ScalingConfig)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")


def run(args: argparse.Namespace) -> int:
    """``seele bench scaling``: time the grid, print the table, optionally write JSON."""
    try:
        config = options_from_args(ScalingConfig, args)
    except ValueError as error:
        print(f"seele bench scaling: error: {error}", file=sys.stderr)
        return 2
    grid = default_grid(config.prompts, config.rollouts, config.max_new_tokens)
    print(f"timing {len(grid)} points, {config.steps} steps each (+1 warm-up) ...")
    rows = run_scaling(grid, config.steps, config.threads)
    print(format_scaling(rows))
    if args.json is not None:
        write_atomic(args.json, json.dumps(rows, indent=1) + "\n")
        print(f"rows written to {args.json}")
    return 0
