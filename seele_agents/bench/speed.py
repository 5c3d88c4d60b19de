"""Time our GRPO step against TRL's GRPOTrainer: same tiny model, same work, one process, CPU.

    seele bench speed                                    # 8 timed steps per side, ~2 minutes
    seele bench speed --steps 16 --json speed.json       # more steps: a tighter median
    seele bench speed --steps 1 --prompts 2 --group-size 4 --max-new-tokens 16   # a smoke run

**What is matched.** Both sides start from one model (the tiny Llama of
:func:`~seele_agents.models.tiny.build_tiny` after a short supervised warm-up, so some groups have
mixed rewards and both updates move the weights; two copies) and train against their own SEELE
env over the same procedural problems (the CPU demo's: arithmetic, difficulty 1-2, hints in
steps at the start of the response). Same optimiser (AdamW, constant LR, no weight decay,
gradient norm clipped to 1), same loss (Dr.GRPO: advantages ``r - mean`` within each group of
``n``, no std scaling, token terms summed over ``num_sequences * max_new_tokens``), ``beta = 0``
(no reference model on either side), one on-policy update per generation batch in one
forward/backward pass, temperature 1 and the same completion limit; by default every completion
is exactly ``max_new_tokens`` long on both sides (``--eos`` lets them end at EOS). Per step each
side samples and trains on ``P * m * n`` completions:

* ours: ``collect_rollouts`` (P problems x m rounds x n completions; SEELE fits each round's hint
  rates on the previous round's outcomes) -> ``GRPOLearner.step`` -> ``generator.sync_weights``,
  the loop of ``seele train``;
* TRL: ``GRPOTrainer`` fed by :class:`~seele_agents.integrations.trl.SEELEForTRL`: ``P * m``
  prompts x ``n`` generations per step, each prompt one SEELE round whose rate the same curriculum
  chose, each completion verified by the env, which records the outcomes in the curriculum.

**How it is timed.** The two sides alternate step by step inside one ``trainer.train()``: a
callback at TRL's ``on_step_end`` runs one of our steps, so a change in machine load hits both
alike. A TRL step is timed from the end of the previous callback to its own ``on_step_end``, so
it includes TRL's data loading (the adapter drawing rows), logging and bookkeeping; our step is
timed as ``seele train`` times ``time/step_s``. The first step of each side warms up and is not
timed. The ratio is ``median(ours) / median(TRL)``: at most 1 means ours is not slower.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seele_agents.files import write_atomic
from seele_agents.options import Options, add_options, option, options_from_args, require

__all__ = [
    "OUR_PHASES",
    "OurSide",
    "SpeedConfig",
    "add_arguments",
    "format_report",
    "run",
    "run_speed",
    "start_model",
]

OUR_PHASES = {
    "generation": "time/generation_s",
    "verification": "time/env_s",
    "curriculum": "time/curriculum_s",
    "reference": "time/reference_s",
    "forward_backward": "time/forward_backward_s",
    "optimizer": "time/optimizer_s",
}
"""Our step's phases and the metric (of ``collect_rollouts`` or ``learner.step``) timing each."""

TRL_PHASES = ("generation", "reward", "rows")
"""TRL's phases we can time from outside: ``_generate`` (tokenise, ``model.generate``, decode),
the reward function (verification + the curriculum's ``record``) and the adapter drawing rows
(the curriculum's rates + prompt rendering)."""

TOKEN_TOLERANCE = 0.10
"""Largest relative gap of the mean completion length between the sides for a fair comparison."""


@dataclass(frozen=True)
class SpeedConfig(Options):
    """One speed comparison: ``seele bench speed``'s options."""

    steps: int = option(8, "Timed steps per side, after one warm-up step each.", ge=1)
    prompts: int = option(
        4, "Problems per step on our side (P); TRL gets P * rounds prompts.", ge=1
    )
    group_size: int = option(
        8, "Completions per problem per round (n, TRL's num_generations).", ge=1
    )
    rounds: int = option(2, "SEELE's rounds per problem per step (m).", ge=1)
    max_new_tokens: int = option(
        64, "Most generated tokens per completion (TRL's max_completion_length).", ge=1
    )
    threads: int = option(
        1, "Torch threads (1 suits the tiny model; more threads only wait on each other).", ge=1
    )
    seed: int = option(0, "Seed of the model, the curricula and sampling.")
    lr: float = option(1e-3, "Learning rate of both optimisers.", gt=0)
    num_problems: int = option(
        512, "Procedural problems in each side's env (at least 3 * prompts * rounds).", ge=1
    )
    fixed_length: bool = option(
        True,
        "Every completion exactly max-new-tokens long on both sides (EOS masked until then: "
        "our min_new_tokens, TRL's generation_kwargs), so both generate and train on the same "
        "number of tokens; --eos lets completions end at EOS, and the sides' lengths then differ "
        "by sampling noise and any length-dependent savings (ours drops finished rows from the "
        "batch; generate keeps them).",
        cli={"flags": ("--eos",)},
    )
    sft_steps: int = option(
        150,
        "Supervised warm-up steps of the shared start model (0 = untrained). An untrained model "
        "is never right, so every advantage would be 0 and neither side's update would change "
        "a weight; after the warm-up some groups have mixed rewards.",
        ge=0,
    )

    def check(self) -> None:
        needed = 3 * self.prompts * self.rounds  # SEELEForTRL: (interleave + 1) * P * m
        require(
            self.num_problems >= needed,
            "num_problems",
            self.num_problems,
            f"is too few: TRL's side needs 3 * prompts * rounds = {needed} distinct problems per "
            "block. Raise it.",
        )

    @property
    def completions_per_step(self) -> int:
        """``P * m * n``, on each side."""
        return self.prompts * self.rounds * self.group_size


# -- the benchmark -------------------------------------------------------------------------------


def run_speed(config: SpeedConfig, *, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the comparison; returns the result (see :func:`format_report` for its shape).

    Args:
        config: Sizes and seeds.
        echo: Where progress lines go.

    Returns:
        ``config``, ``machine``, ``ours`` and ``trl`` (per-step times, their median, mean, min
        and max, token counts, phase breakdown, whether the parameters changed), ``ratio`` and
        ``ratio_mean`` (ours / TRL, by medians and by means), ``curriculum_share`` and
        ``tokens_match``.
    """
    import torch
    from transformers.utils import logging as hf_logging

    threads, verbosity = torch.get_num_threads(), hf_logging.get_verbosity()
    torch.set_num_threads(config.threads)
    hf_logging.set_verbosity_error()  # TRL's advice on a CPU run would fill the output
    try:
        echo(f"start model: the tiny Llama after {config.sft_steps} supervised steps")
        model, tokenizer = start_model(config.seed, config.sft_steps)
        ours = OurSide(config, copy.deepcopy(model), tokenizer)
        trl = _TRLSide(config, model, tokenizer)
        echo(f"timing {config.steps} steps per side (+1 warm-up each), alternating ...")
        with tempfile.TemporaryDirectory(prefix="seele-speed-") as folder:
            trl.train(folder, after_each_step=ours.step)
    finally:
        torch.set_num_threads(threads)
        hf_logging.set_verbosity(verbosity)
    return _result(config, ours.report(), trl.report())


class OurSide:
    """Our side: a curriculum env (SEELE by default), the generator and the GRPO learner;
    :meth:`step` runs one step of ``seele train``'s loop and records its metrics (also used by
    :mod:`seele_agents.bench.scaling`)."""

    def __init__(
        self, config: SpeedConfig, model: Any, tokenizer: Any, curriculum: str = "seele"
    ) -> None:
        import torch

        from seele_agents.algos.grpo import GRPOLearner
        from seele_agents.generation import SamplingParams, TransformersGenerator

        self.config = config
        self.model = model
        self.start = _snapshot(self.model)
        self.env = _env(config, tokenizer, curriculum)
        params = SamplingParams(
            max_new_tokens=config.max_new_tokens, temperature=1.0,
            min_new_tokens=config.max_new_tokens if config.fixed_length else 0,
        )  # fmt: skip
        self.generator = TransformersGenerator(
            self.model, tokenizer, params, batch_size=max(128, config.prompts * config.group_size),
            seed=config.seed,
        )  # fmt: skip
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        self.learner = GRPOLearner(
            self.model, optimizer, scheduler, advantage="dr_grpo", baseline="round",
            loss_type="dr_grpo", beta=0.0, gamma=0.0, epochs=1, minibatch_size=0,
            micro_batch_size=config.completions_per_step, max_grad_norm=1.0,
            max_new_tokens=config.max_new_tokens, temperature=1.0,
        )  # fmt: skip
        self.records: list[dict[str, float]] = []

    def step(self) -> None:
        """One training step, timed as ``seele train`` times ``time/step_s``."""
        from seele_agents.training.rollout import collect_rollouts

        c = self.config
        started = time.perf_counter()
        batch = collect_rollouts(
            self.env, self.generator, num_problems=c.prompts, num_rounds=c.rounds,
            group_size=c.group_size,
        )  # fmt: skip
        metrics = {**batch.metrics, **self.learner.step(batch)}
        self.generator.sync_weights()
        metrics["time/step_s"] = time.perf_counter() - started
        metrics["prompt_tokens_mean"] = float(
            (batch.prompt_mask | batch.hint_mask).sum(-1).float().mean()
        )
        metrics["completions"] = float(len(batch))
        self.records.append(metrics)

    def report(self) -> dict[str, Any]:
        timed = self.records[1:]  # the first step warms up
        steps = [r["time/step_s"] for r in timed]
        phases = {name: [r[key] for r in timed] for name, key in OUR_PHASES.items()}
        return {
            **_side(steps, phases, self.model, self.start),
            "completions_per_step": _mean([r["completions"] for r in timed]),
            "completion_tokens_mean": _mean([r["rollout/completion_tokens_mean"] for r in timed]),
            "prompt_tokens_mean": _mean([r["prompt_tokens_mean"] for r in timed]),
            "truncated_fraction": _mean([r["rollout/truncated_fraction"] for r in timed]),
            "reward_mean": _mean([r["reward/mean"] for r in timed]),
            "grad_norm_mean": _mean([r["grad/norm"] for r in timed]),
            "nonzero_grad_steps": sum(r["grad/norm"] > 0 for r in self.records),
            "curriculum_share": [r["time/curriculum_s"] / r["time/step_s"] for r in timed],
        }


class _TRLSide:
    """TRL's side: ``GRPOTrainer`` on :class:`SEELEForTRL`, its phases timed from outside."""

    def __init__(self, config: SpeedConfig, model: Any, tokenizer: Any) -> None:
        from seele_agents.integrations.trl import SEELEForTRL

        self.config = config
        self.model, self.tokenizer = model, tokenizer
        self.start = _snapshot(self.model)
        self.adapter = SEELEForTRL(_env(config, self.tokenizer))
        self.steps: list[float] = []
        self.phases: dict[str, list[float]] = {name: [] for name in TRL_PHASES}
        self.current = dict.fromkeys(TRL_PHASES, 0.0)
        self.lengths: list[tuple[float, float, int]] = []  # (prompt, completion, count) per step
        self.logs: list[dict[str, float]] = []

    def train(self, folder: str, after_each_step: Callable[[], None]) -> None:
        """``config.steps + 1`` TRL steps, calling ``after_each_step`` (untimed) after each."""
        from transformers import TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from trl import GRPOConfig, GRPOTrainer

        c, side = self.config, self
        args = GRPOConfig(
            output_dir=folder, max_steps=c.steps + 1, seed=c.seed,
            per_device_train_batch_size=c.completions_per_step, gradient_accumulation_steps=1,
            num_generations=c.group_size, num_iterations=1, shuffle_dataset=False,
            max_completion_length=c.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
            learning_rate=c.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            optim="adamw_torch", max_grad_norm=1.0, loss_type="dr_grpo", scale_rewards="none",
            beta=0.0, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
            bf16=False, disable_tqdm=True, dataloader_num_workers=0,
            generation_kwargs={"min_new_tokens": c.max_new_tokens} if c.fixed_length else None,
        )  # fmt: skip

        class Alternate(TrainerCallback):
            """Times TRL's steps and runs one of ours (untimed) after each."""

            mark = 0.0

            def on_train_begin(self, *_: Any, **__: Any) -> None:
                self.mark = time.perf_counter()

            def on_step_end(self, *_: Any, **__: Any) -> None:
                side.steps.append(time.perf_counter() - self.mark)
                for name in TRL_PHASES:
                    side.phases[name].append(side.current[name])
                side.current = dict.fromkeys(TRL_PHASES, 0.0)
                after_each_step()
                self.mark = time.perf_counter()

            def on_log(self, *_: Any, logs: dict[str, float] | None = None, **__: Any) -> None:
                side.logs.append(dict(logs or {}))

        trainer = GRPOTrainer(
            model=self.model, processing_class=self.tokenizer, args=args,
            reward_funcs=self._timed("reward", self.adapter.reward),
            train_dataset=self.adapter.dataset(args), callbacks=[Alternate()],
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        self.adapter._draw_batch = self._timed("rows", self.adapter._draw_batch)  # type: ignore[method-assign]
        generate = self._timed("generation", trainer._generate)

        def counted(prompts: list[Any]) -> Any:
            out = generate(prompts)
            prompt_ids, completion_ids = out[0], out[1]
            self.lengths.append(
                (_mean([len(x) for x in prompt_ids]), _mean([len(x) for x in completion_ids]),
                 len(completion_ids))
            )  # fmt: skip
            return out

        trainer._generate = counted  # type: ignore[method-assign]
        trainer.train()
        self.adapter.finish()

    def _timed(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[phase] += time.perf_counter() - start

        timed.__name__ = getattr(function, "__name__", phase)  # TRL names reward columns by it
        return timed

    def report(self) -> dict[str, Any]:
        timed, lengths = self.steps[1:], self.lengths[1:]
        steps = [entry for entry in self.logs if "loss" in entry]  # one per optimiser step
        logs = steps[1:]  # the first step warms up
        return {
            **_side(timed, {k: v[1:] for k, v in self.phases.items()}, self.model, self.start),
            "completions_per_step": _mean([count for *_, count in lengths]),
            "completion_tokens_mean": _mean([completion for _, completion, _ in lengths]),
            "prompt_tokens_mean": _mean([prompt for prompt, *_ in lengths]),
            "truncated_fraction": _mean([e.get("completions/clipped_ratio", 0.0) for e in logs]),
            "reward_mean": _mean([e.get("reward", 0.0) for e in logs]),
            "grad_norm_mean": _mean([e.get("grad_norm", 0.0) for e in logs]),
            "nonzero_grad_steps": sum(e.get("grad_norm", 0.0) > 0 for e in steps),
        }


# -- helpers -------------------------------------------------------------------------------------


def start_model(seed: int, sft_steps: int) -> tuple[Any, Any]:
    """The tiny Llama after ``sft_steps`` supervised steps on easy procedural problems (the
    demo's warm-up recipe: difficulty 1, 32 problems a step, learning rate 1e-3)."""
    from seele_agents.models.tiny import build_tiny
    from seele_agents.training.sft import sft_examples, sft_warmup
    from seele_env.procedural import generate_problems

    model, tokenizer = build_tiny(seed=seed)
    if sft_steps:
        problems = generate_problems(2000, seed=2, difficulty=1)
        sft_warmup(model, tokenizer, sft_examples(problems, template="plain"), steps=sft_steps,
                   batch_size=32, lr=1e-3, seed=seed)  # fmt: skip
    return model, tokenizer


def _env(config: SpeedConfig, tokenizer: Any, curriculum: str = "seele") -> Any:
    import gymnasium as gym

    import seele_env  # noqa: F401  (registers the envs)

    return gym.make(
        "seele/Curriculum-v0", curriculum=curriculum, dataset="procedural", difficulty=(1, 2),
        families=["arithmetic"],
        num_problems=config.num_problems, hint_unit="steps", placement="response",
        template="plain", tokenizer=tokenizer, num_rounds=config.rounds,
        group_size=config.group_size, seed=config.seed,
    )  # fmt: skip


def _snapshot(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _change(model: Any, start: dict[str, Any]) -> float:
    """Largest absolute change of any parameter since ``start``."""
    return max(
        float((p.detach() - start[name]).abs().max()) for name, p in model.named_parameters()
    )


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _side(
    steps: list[float], phases: dict[str, list[float]], model: Any, start: dict[str, Any]
) -> dict[str, Any]:
    """Per-step times and a phase breakdown in mean seconds per step (they sum to the mean
    step; ``other`` is the rest)."""
    breakdown = {name: _mean(values) for name, values in phases.items()}
    mean = _mean(steps)
    breakdown["other"] = mean - sum(breakdown.values())
    change = _change(model, start)
    return {
        "step_s": steps,
        "median_s": statistics.median(steps),
        "mean_s": mean,
        "min_s": min(steps),
        "max_s": max(steps),
        "phases_s": breakdown,
        "phases_share": {name: value / mean for name, value in breakdown.items()},
        "parameter_change_max": change,
        "parameters_changed": change > 0,
    }


def _result(config: SpeedConfig, ours: dict[str, Any], trl: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers
    import trl as trl_package

    shares = ours.pop("curriculum_share")
    gap = abs(ours["completion_tokens_mean"] - trl["completion_tokens_mean"]) / max(
        trl["completion_tokens_mean"], 1e-9
    )
    return {
        "config": asdict(config),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": config.threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl_package.__version__,
        },
        "ours": ours,
        "trl": trl,
        "ratio": ours["median_s"] / trl["median_s"],
        "ratio_mean": ours["mean_s"] / trl["mean_s"],
        "curriculum_share": {"mean": _mean(shares), "max": max(shares)},
        "completion_tokens_gap": gap,
        "tokens_match": gap <= TOKEN_TOLERANCE,
    }


# -- report and command line ---------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    """Markdown: per-step times of both sides, the ratio, and our phase breakdown.

    Example:
        >>> side = {"median_s": 1.0, "mean_s": 1.0, "min_s": 0.9, "max_s": 1.1, "step_s": [1.0],
        ...         "completions_per_step": 64, "completion_tokens_mean": 60.0,
        ...         "prompt_tokens_mean": 30.0, "phases_s": {"generation": 0.6, "other": 0.4},
        ...         "phases_share": {"generation": 0.6, "other": 0.4}}
        >>> result = {"ours": side, "trl": {**side, "median_s": 2.0}, "ratio": 0.5,
        ...           "ratio_mean": 0.5, "curriculum_share": {"mean": 0.01, "max": 0.02},
        ...           "tokens_match": True, "completion_tokens_gap": 0.0}
        >>> print(format_report(result).splitlines()[2])
        | ours | 1.000 | 1.000 | 0.900-1.100 | 64 | 30.0 | 60.0 |
    """
    ours, trl = result["ours"], result["trl"]
    lines = [
        "| side | median step (s) | mean step (s) | min-max (s) | completions/step "
        "| prompt tokens | completion tokens |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, side in (("ours", ours), ("TRL", trl)):
        lines.append(
            f"| {name} | {side['median_s']:.3f} | {side['mean_s']:.3f} | "
            f"{side['min_s']:.3f}-{side['max_s']:.3f} | {side['completions_per_step']:.0f} | "
            f"{side['prompt_tokens_mean']:.1f} | {side['completion_tokens_mean']:.1f} |"
        )
    share = result["curriculum_share"]
    lines += [
        "",
        f"ratio ours/TRL: {result['ratio']:.3f} by medians, {result['ratio_mean']:.3f} by means "
        "(<= 1: ours is not slower)",
        f"curriculum share of our step: {100 * share['mean']:.2f}% mean, "
        f"{100 * share['max']:.2f}% max",
        f"completion tokens: gap {100 * result['completion_tokens_gap']:.1f}% "
        f"({'matched' if result['tokens_match'] else 'NOT matched'}, tolerance "
        f"{100 * TOKEN_TOLERANCE:.0f}%)",
    ]
    for name, side in (("ours", ours), ("TRL", trl)):
        lines += ["", f"| {name}: phase | s per step | share |", "|---|---:|---:|"]
        for phase, seconds in side["phases_s"].items():
            lines.append(f"| {phase} | {seconds:.3f} | {100 * side['phases_share'][phase]:.1f}% |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele bench speed``: :class:`SpeedConfig`'s fields, and ``--json``."""
    add_options(parser, SpeedConfig)
    parser.add_argument("--json", type=Path, help="also write the full result to this JSON file")


def trl_installed(command: str) -> bool:
    """Whether TRL can be imported; if not, say so on stderr as ``command``, naming the install."""
    import importlib.util

    if importlib.util.find_spec("trl") is not None:
        return True
    print(f"{command}: error: TRL is not installed; the comparison runs TRL's GRPOTrainer. "
          "Install it with: pip install -e '.[trl]'", file=sys.stderr)  # fmt: skip
    return False


def run(args: argparse.Namespace) -> int:
    """``seele bench speed``: run, print the markdown report, optionally write JSON."""
    try:
        config = options_from_args(SpeedConfig, args)
    except ValueError as error:
        print(f"seele bench speed: error: {error}", file=sys.stderr)
        return 2
    if not trl_installed("seele bench speed"):
        return 2
    result = run_speed(config)
    print(format_report(result))
    if args.json is not None:
        write_atomic(args.json, json.dumps(result, indent=2) + "\n")
        print(f"result written to {args.json}")
    return 0
