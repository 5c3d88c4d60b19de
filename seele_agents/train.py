"""The training loop: a model, an env with a curriculum, a learner, checkpoints and metrics.

:func:`train` reads top to bottom: set up (model, envs, optimiser, generator, learner), resume if
asked, optionally warm up with supervised fine-tuning, evaluate, then per training step
``collect_rollouts`` -> ``learner.step`` -> log -> checkpoint, and a final evaluation and plot.
The learner is GRPO, PPO or REINFORCE++ (``algo.name``, :func:`make_learner`); all three
share the rollouts, the loss code and this loop.
With the default :class:`~seele_agents.config.TrainConfig` this is the embedded CPU demo: a tiny
Llama built locally, SFT on easy procedural problems, GRPO + SEELE on harder ones.

Ctrl-C during training saves a checkpoint of the last finished step before exiting, and
``resume=`` continues exactly where a checkpoint left off (same parameters, curriculum state,
sampling RNG and optimiser state as an uninterrupted run).

Started by ``torchrun`` or ``accelerate launch``, :func:`train` runs data-parallel
(:mod:`seele_agents.distributed`): every rank rolls out its shard of each step's problems, the
curricula record every rank's outcomes, gradients are summed over ranks; rank 0 alone logs,
prints and writes checkpoints, which any number of processes can resume.
"""

from __future__ import annotations

import copy
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seele_agents.checkpoint import (
    FILES,
    RunExistsError,  # noqa: F401  (public here too: callers of train() catch it)
    capture_rng_state,
    checkpoint_path,
    is_intact,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    prune_checkpoints,
    refuse_to_mix,
    resolve_resume,
    restore_rng_state,
    save_checkpoint,
)
from seele_agents.config import (
    TrainConfig,
    check_data_sources,
    config_to_dict,
    eval_source,
    save_config,
)
from seele_agents.distributed import (
    GatheredGenerator,
    World,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_module,
    full_optimizer_state,
    is_sharded,
    load_optimizer_state,
    reduce_metrics,
    setup,
    shard_model,
    teardown,
)
from seele_agents.generation import GenerationRequest, SamplingParams, TransformersGenerator
from seele_agents.grpo import GRPOLearner
from seele_agents.learner import PolicyLearner
from seele_agents.models import (
    apply_lora,
    enable_gradient_checkpointing,
    load_model,
    resolve_device,
)
from seele_agents.ppo import PPOLearner, ValueHead
from seele_agents.reinforcepp import ReinforcePPLearner
from seele_agents.rollout import collect_rollouts, evaluate
from seele_agents.samples import sample_rows
from seele_agents.tracking import MetricsLogger, read_metrics
from seele_env.curricula import Curriculum, make_curriculum
from seele_env.env import MathHintEnv
from seele_env.procedural import CHAIN_FAMILIES, FAMILIES, check_steps, generate_problems

SFT_FOLDER = "sft_model"


@dataclass
class Run:
    """Everything :func:`train` builds, for tests and for callers who drive the loop."""

    config: TrainConfig
    model: Any
    tokenizer: Any
    env: Curriculum
    eval_env: MathHintEnv
    eval_ids: list[str]
    generator: Any
    learner: PolicyLearner
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    world: World = field(default_factory=World)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(config: TrainConfig) -> int:
    """Set torch's CPU thread count from ``config.threads`` (0 = auto); returns the count.

    Auto means one thread for the embedded tiny model: alone on 2 cores a second thread barely
    speeds its small matrix products, and when another process shares the cores every
    operation waits for the descheduled thread (a warm-up measured 14x slower with two threads
    than with one on a busy machine; docs/training.md).
    """
    threads = config.threads or (1 if config.model.name == "tiny" else 0)
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def train(
    config: TrainConfig,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    echo: Any = print,
) -> dict[str, Any]:
    """Run a training job; returns a summary (accuracy before/after, steps, paths).

    Args:
        config: The configuration (see docs/training.md for every field).
        resume: A checkpoint folder, ``"latest"`` (error if none) or ``"auto"`` (latest if any)
            in ``config.output_dir``.
        overwrite: Start afresh in an ``output_dir`` that holds an earlier run.
        echo: Where progress lines go (``print`` by default; rank 0 only when distributed).

    Under ``torchrun``/``accelerate launch`` (``WORLD_SIZE`` > 1) this joins the process group,
    trains data-parallel and leaves the group at the end; every rank returns the summary.
    """
    world, started = setup(config.distributed.backend, str(resolve_device(config.model.device)))
    try:
        _check_world(config, world)
        check_data_sources(config)
        echo = echo if world.is_main else _quiet
        out = Path(config.output_dir)
        checkpoint = resolve_resume(resume, out, require=FILES, echo=echo) if resume else None
        if checkpoint is None:
            refuse_to_mix(out, overwrite)
        barrier(world)  # every rank has looked before rank 0 writes anything
        set_threads(config)
        seed_everything(config.seed)
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(config, out / "config.yaml")
        run = build(config, warm_start=checkpoint is None, echo=echo, world=world,
                    checkpoint=checkpoint)  # fmt: skip
        start_step, state = 0, {}
        if checkpoint is not None:
            start_step, state = _resume(run, checkpoint, echo)
        return loop(run, start_step, state, echo)
    finally:
        if started:
            teardown()


def _check_world(config: TrainConfig, world: World) -> None:
    if world.size == 1:
        return
    if config.distributed.strategy == "fsdp":
        for refused, why in (
            (config.model.lora_rank > 0, "model.lora_rank > 0 (LoRA)"),
            (config.generation.backend == "vllm", "generation.backend=vllm"),
            (config.algo.name == "ppo", "algo.name=ppo (its value head is not sharded)"),
        ):
            if refused:
                raise ValueError(
                    f"distributed.strategy=fsdp does not support {why} yet; use "
                    "distributed.strategy=ddp (docs/scaling.md)."
                )
    for key, value in (("problems_per_step", config.problems_per_step),
                       ("algo.minibatch_size", config.algo.minibatch_size)):  # fmt: skip
        if value % world.size:
            raise ValueError(
                f"{key}={value} cannot be split evenly over {world.size} processes: each takes "
                f"the same share. Use a multiple of {world.size}, or another process count."
            )


def _resume(run: Run, checkpoint: Path, echo: Any) -> tuple[int, dict[str, Any]]:
    """Load a checkpoint into ``run``, at this or any other number of processes.

    Parameters, optimiser, scheduler, curriculum and learner state are the same on every rank.
    Each rank's sampling RNG continues its own stream when the checkpoint has one for its
    rank; a rank the checkpoint did not have starts a new stream (seeded from the run's seed,
    the rank and the step).
    """
    sharded = is_sharded(run.model)  # its weights were loaded before sharding (build)
    start_step, state, extra = load_checkpoint(
        checkpoint, model=None if sharded else run.model,
        optimizer=None if sharded else run.optimizer, scheduler=run.scheduler,
    )  # fmt: skip
    if sharded:
        full = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)
        load_optimizer_state(run.model, run.optimizer, full)
    run.env.load_state_dict(state["curriculum"])
    streams = extra.get("generator_rng_ranks") or [extra["generator_rng"]]
    rank = run.world.rank
    if rank < len(streams):
        run.generator.set_rng_state(streams[rank])
    else:
        seed = run.config.seed + 1_000_003 * rank + start_step
        run.generator.set_rng_state(torch.Generator().manual_seed(seed).get_state())
    run.learner.load_state_dict(extra.get("learner", {}))
    written_by = int(state.get("world_size", 1))
    echo(f"resumed from {checkpoint} at step {start_step}")
    if written_by != run.world.size:
        echo(
            f"  the checkpoint was written by {written_by} process(es), this run has "
            f"{run.world.size}: each step's problems are split differently from here on"
        )
    return start_step, state


def _quiet(*args: Any, **kwargs: Any) -> None:
    """``echo`` of the ranks other than 0."""


def build(
    config: TrainConfig,
    *,
    warm_start: bool = True,
    echo: Any = print,
    world: World | None = None,
    checkpoint: Path | None = None,
) -> Run:
    """Set up model, envs, generator and learner (and the SFT warm-up when configured).

    With several processes every rank builds the same, then takes rank 0's weights; with
    ``distributed.strategy=fsdp`` the model (and the reference model) are then sharded, after
    the weights of ``checkpoint`` (when resuming) are loaded whole.
    """
    mc, world = config.model, world or World()
    device = resolve_device(mc.device)
    if device.type == "cuda" and world.size > 1 and device.index is None:
        device = torch.device("cuda", world.local_rank)  # one GPU per rank on each machine
    model, tokenizer = load_model(
        mc.name, dtype=mc.dtype, device=str(device), revision=mc.revision, seed=config.seed
    )
    out = Path(config.output_dir)
    if config.sft.steps > 0:
        warm_up(config, model, tokenizer, out / SFT_FOLDER, fresh=warm_start, echo=echo,
                world=world)  # fmt: skip
    if mc.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if mc.lora_rank > 0:
        model = apply_lora(
            model, rank=mc.lora_rank, alpha=mc.lora_alpha, dropout=mc.lora_dropout,
            target_modules=mc.lora_target_modules,
        )  # fmt: skip
    broadcast_module(model, world)
    ref_model = None
    fsdp = config.distributed.strategy == "fsdp" and world.size > 1
    if fsdp:
        if config.algo.beta > 0:  # the reference is the model before RL, as in the learner
            ref_model = shard_model(copy.deepcopy(model).eval().requires_grad_(False), world)
        if checkpoint is not None:
            load_weights(checkpoint, model)
        shard_model(model, world)
    env = _make_env(config, tokenizer)
    eval_env, eval_ids = _make_eval_env(config, tokenizer, env.unwrapped)
    trainable = [p for p in model.parameters() if p.requires_grad]
    oc, ac = config.optim, config.algo
    groups: list[dict[str, Any]] = [{"params": trainable}]
    value_head = ValueHead.for_model(model) if ac.name == "ppo" else None
    if value_head is not None:  # a new layer: its own (higher) learning rate
        groups.append({"params": list(value_head.parameters()), "lr": ac.value_lr or oc.lr})
        broadcast_module(value_head, world)
    optimizer = make_optimizer(groups, oc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, oc.scheduler, oc.warmup_steps, config.steps)
    )
    gc = config.generation
    params = SamplingParams(gc.max_new_tokens, gc.temperature, gc.top_p, gc.top_k)
    generator = _make_generator(config, model, tokenizer, params, seed=config.seed + world.rank)
    if fsdp:
        generator = GatheredGenerator(generator, model)
    learner = make_learner(
        config, model, optimizer, scheduler, value_head, world=world, ref_model=ref_model
    )
    return Run(config, model, tokenizer, env, eval_env, eval_ids, generator, learner,
               optimizer, scheduler, world)  # fmt: skip


def make_optimizer(groups: list[dict[str, Any]], oc: Any) -> torch.optim.Optimizer:
    """The optimiser ``optim.name`` names over parameter ``groups``, with the config's options."""
    if oc.name == "sgd":
        return torch.optim.SGD(groups, lr=oc.lr, momentum=oc.momentum, weight_decay=oc.weight_decay)
    return torch.optim.AdamW(groups, lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay)


def make_learner(
    config: TrainConfig,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    value_head: ValueHead | None = None,
    world: World | None = None,
    ref_model: Any = None,
) -> PolicyLearner:
    """The learner ``config.algo.name`` names, with the config's options."""
    ac, gc = config.algo, config.generation
    shared = dict(
        loss_type=ac.loss, epsilon_low=ac.epsilon_low, epsilon_high=ac.epsilon_high,
        beta=ac.beta, gamma=ac.gamma, epochs=ac.epochs, minibatch_size=ac.minibatch_size,
        micro_batch_size=ac.micro_batch_size, max_grad_norm=config.optim.max_grad_norm,
        max_new_tokens=gc.max_new_tokens, temperature=gc.temperature, world=world or World(),
        ref_model=ref_model,
    )  # fmt: skip
    if ac.name == "ppo":
        return PPOLearner(
            model, optimizer, scheduler, value_head=value_head, value_coef=ac.value_coef,
            value_clip=ac.value_clip, discount=ac.discount, gae_lambda=ac.gae_lambda, **shared,
        )  # fmt: skip
    if ac.name == "reinforcepp":
        return ReinforcePPLearner(model, optimizer, scheduler, discount=ac.discount, **shared)
    return GRPOLearner(
        model, optimizer, scheduler, advantage=ac.advantage, baseline=ac.baseline, **shared
    )


def loop(run: Run, start_step: int, state: dict[str, Any], echo: Any = print) -> dict[str, Any]:
    """The training steps from ``start_step``, then the final evaluation and plot.

    SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers send) stop the run with the
    checkpoint of the last finished step saved (:class:`_Boundary`), then raise
    :class:`KeyboardInterrupt` (:class:`Terminated` for SIGTERM).
    """
    config, out, world = run.config, Path(run.config.output_dir), run.world
    summary: dict[str, Any] = dict(state.get("summary", {}))
    if state and start_step >= config.steps and "accuracy_after" in summary:
        echo(f"the run already finished at step {start_step}: nothing to do")
        return {**summary, "checkpoint": str(checkpoint_path(out, start_step))}
    lc = config.log
    logger: Any = _NoLogger()
    if world.is_main:
        logger = MetricsLogger(
            out, tensorboard=lc.tensorboard, wandb=lc.wandb, trackio=lc.trackio,
            project=lc.project, config=config_to_dict(config),
            resume_step=start_step if state else None, echo=echo,
        )  # fmt: skip
    boundary = _Boundary(run, start_step)
    try:
        with _Interrupts(boundary, echo):
            if "accuracy_before" not in summary:
                summary.update(_evaluate_summary(run, "before", logger, 0, echo))
            boundary.snapshot()  # evaluation samples too: the state a resume starts from
            _train_steps(run, start_step, summary, logger, boundary, echo)
            final = {**summary, **_evaluate_summary(run, "after", logger, config.steps, echo)}
            logger.close()
            final["steps"] = config.steps
            final["rollouts"] = (
                config.steps
                * config.problems_per_step
                * config.curriculum.num_rounds
                * config.curriculum.group_size
            )
            final["checkpoint"] = str(_save(run, config.steps, final))
    except KeyboardInterrupt:
        _save_interrupted(run, boundary, summary, echo)
        logger.close()
        raise
    finally:
        boundary.close()
    echo(_before_after(final, len(run.eval_ids), run.config))
    if lc.plot and world.is_main:
        from seele_agents.plots import plot_training

        final["plot"] = str(
            plot_training(read_metrics(out / "metrics.jsonl"), out / "training.png")
        )
        echo(f"plot: {final['plot']}")
    return final


def _train_steps(
    run: Run,
    start_step: int,
    summary: dict[str, Any],
    logger: Any,
    boundary: _Boundary,
    echo: Any,
) -> None:
    """Steps ``start_step + 1 .. config.steps``: rollouts -> update -> log (metrics, and every
    ``log.samples_every`` steps a few of the rollouts) -> checkpoint."""
    config, world = run.config, run.world
    progress = _progress(config.log.progress and world.is_main, start_step, config.steps)
    try:
        for step in range(start_step + 1, config.steps + 1):
            started = time.perf_counter()
            batch = collect_rollouts(
                run.env, run.generator, num_problems=config.problems_per_step,
                num_rounds=config.curriculum.num_rounds, group_size=config.curriculum.group_size,
                world=world,
            )  # fmt: skip
            metrics = {**batch.metrics, **run.learner.step(batch)}
            metrics = reduce_metrics(metrics, world, sums=_SUMMED)
            run.generator.sync_weights()
            metrics["time/step_s"] = time.perf_counter() - started
            metrics["time/tokens_per_s"] = metrics["rollout/generated_tokens"] / max(
                metrics["time/generation_s"], 1e-9
            )
            every = config.eval.every_steps
            if every and step % every == 0 and step < config.steps:  # the last: after the loop
                metrics.update(_evaluate(run))
            logger.log(step, metrics)
            lc = config.log
            if world.is_main and lc.samples_every and step % lc.samples_every == 0:
                rows = sample_rows(batch, run.env.unwrapped, run.tokenizer, step=step,
                                   limit=lc.samples_per_step)  # fmt: skip
                logger.log_samples(step, rows)
            _advance(progress, metrics, echo, step)
            boundary.finish(step)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                _save(run, step, summary)
            boundary.raise_pending()
    finally:
        if progress is not None:
            progress.close()


class Terminated(KeyboardInterrupt):
    """SIGTERM (or another stop signal) arrived; handled like Ctrl-C.

    Attributes:
        signum: The signal's number; ``seele train`` exits with ``128 + signum``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class _Boundary:
    """The run's state at the end of the last finished step, and whether the step under way has
    changed the weights yet (an optimiser step has begun).

    A step first samples (which moves the curriculum, the sampling RNG and the global RNGs),
    then updates the weights. Interrupted before its first optimiser step, the run's
    parameters, optimiser and scheduler are still those of the last finished step, and the
    rest is put back from the snapshot taken there (:meth:`restore`), so the checkpoint saved
    is the one an uninterrupted run would have written at that step. Once the weights are
    changing, a signal waits for the step to end (:class:`_Interrupts`).
    """

    def __init__(self, run: Run, step: int) -> None:
        self.run, self.start, self.done = run, step, step
        self.touched = False
        self.pending: int | None = None
        self._hook = run.optimizer.register_step_pre_hook(self._touch)
        self.snapshot()

    def _touch(self, *args: Any) -> None:
        self.touched = True

    def snapshot(self) -> None:
        """Remember the state that an optimiser step does not cover (a few kilobytes)."""
        self.curriculum = copy.deepcopy(self.run.env.state_dict())
        self.generator_rng = self.run.generator.get_rng_state()
        self.rng = capture_rng_state()

    def finish(self, step: int) -> None:
        """``step`` is done: from here a signal stops the run at once."""
        self.done, self.touched = step, False
        self.snapshot()

    def restore(self) -> None:
        """Put back the state of the last finished step (valid while not :attr:`touched`)."""
        self.run.env.load_state_dict(self.curriculum)
        self.run.generator.set_rng_state(self.generator_rng)
        restore_rng_state(self.rng)

    def raise_pending(self) -> None:
        """Raise the interrupt that waited for the step to end, if any."""
        if self.pending is not None:
            raise _interrupt(self.pending)

    def close(self) -> None:
        self._hook.remove()


def _interrupt(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


class _Interrupts:
    """SIGINT and SIGTERM as :class:`KeyboardInterrupt` (SIGTERM's: :class:`Terminated`),
    raised at once unless the weights are changing; then at the end of the step (a second
    signal does not wait). Installed only in the main thread (Python's rule)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, boundary: _Boundary, echo: Any) -> None:
        self.boundary, self.echo = boundary, echo
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        boundary = self.boundary
        if boundary.touched and boundary.pending is None:
            boundary.pending = signum
            self.echo(
                f"\nsignal {signal.Signals(signum).name}: finishing step {boundary.done + 1}, "
                "which is updating the weights, then saving it (signal again to stop at once, "
                "without saving it)"
            )
            return
        raise _interrupt(signum)


def _save_interrupted(run: Run, boundary: _Boundary, summary: dict[str, Any], echo: Any) -> None:
    """On an interrupt: save the checkpoint of the last finished step, unless one is there."""
    done, out = boundary.done, Path(run.config.output_dir)
    if boundary.touched:
        echo(
            f"\ninterrupted while step {done + 1} was updating the weights: its state is not "
            f"the end of a step, so it is not saved; the latest checkpoint stands "
            f"({latest_checkpoint(out) or 'none'})"
        )
        return
    if done <= boundary.start:
        echo(f"\ninterrupted before a step finished: nothing new to save since step {done}")
        return
    if is_sharded(run.model):
        echo("\ninterrupted: a sharded (FSDP) run cannot gather its weights once interrupted; "
             "its last periodic checkpoint stands")  # fmt: skip
        return
    path = checkpoint_path(out, done)
    if is_intact(path):
        echo(f"\ninterrupted: the checkpoint of step {done} is already saved ({path}); kept")
        return
    echo(f"\ninterrupted: saving a checkpoint of step {done} (the last finished) before exiting")
    boundary.restore()
    _save(run, done, summary, gather=False)  # no collectives: the other ranks may be anywhere


def _evaluate_summary(run: Run, when: str, logger: Any, step: int, echo: Any) -> dict[str, Any]:
    """Evaluate before or after RL: log, print, and return the summary's ``*_{when}`` entries."""
    ec, world = run.config.eval, run.world
    n = len(run.eval_ids[world.rank :: world.size])
    points = _curve_points(run) if ec.hint_curve else -1
    gc = run.config.generation
    sampled = ec.samples if gc.temperature > 0 else 0
    answers = n * (1 + sampled) + (points + 1) * n * (1 + min(sampled, 1))
    bar = _progress(run.config.log.progress and world.is_main, 0, answers, f"eval {when}", "answer")
    max_new_tokens = ec.max_new_tokens or gc.max_new_tokens
    curves = {}
    try:
        metrics = _evaluate(run, bar)
        if ec.hint_curve:
            greedy = SamplingParams(max_new_tokens=max_new_tokens, temperature=0)
            curves["greedy"] = _hint_curve(run, points, greedy, bar)
        if ec.hint_curve and sampled:
            params = SamplingParams(max_new_tokens, gc.temperature, gc.top_p, gc.top_k)
            with _own_stream(run):
                curves["sampled"] = _hint_curve(run, points, params, bar)
    finally:
        if bar is not None:
            bar.close()
    logger.log(step, metrics)
    summary = {f"{key.removeprefix('eval/')}_{when}": value for key, value in metrics.items()}
    shown = [f"greedy {metrics['eval/accuracy']:.3f}"]
    if "eval/accuracy_sampled" in metrics:
        shown.append(
            f"sampled {metrics['eval/accuracy_sampled']:.3f} "
            f"(T={run.config.generation.temperature:g}, {run.config.eval.samples} per problem)"
        )
    if "eval/step_accuracy" in metrics:
        shown.append(f"per step {metrics['eval/step_accuracy']:.3f}")
    if "eval/step_accuracy_sampled" in metrics:
        shown[-1] += f" greedy, {metrics['eval/step_accuracy_sampled']:.3f} sampled"
    echo(f"held-out accuracy {when} RL (no hint): " + ", ".join(shown))
    if "greedy" in curves:
        summary[f"hint_curve_{when}"] = curves["greedy"]
    if "sampled" in curves:
        summary[f"hint_curve_sampled_{when}"] = curves["sampled"]
    if curves:
        names = " / ".join(curves)
        values = zip(*(curve.values() for curve in curves.values()), strict=True)
        pairs = ("/".join(f"{v:.2f}" for v in row) for row in values)
        echo(
            f"  with k of the solution's steps given ({names}): "
            + "  ".join(f"{k}: {pair}" for k, pair in zip(curves["greedy"], pairs, strict=True))
        )
    return summary


def _before_after(summary: dict[str, Any], n_problems: int, config: TrainConfig) -> str:
    """The closing lines: held-out accuracy before -> after RL, and the rollouts it took."""
    lines = [
        f"held-out accuracy on {n_problems} problems, no hint: greedy "
        f"{summary['accuracy_before']:.3f} before RL -> {summary['accuracy_after']:.3f} after"
    ]
    if "accuracy_sampled_after" in summary and "accuracy_sampled_before" in summary:
        lines[0] += (
            f"; sampled {summary['accuracy_sampled_before']:.3f} -> "
            f"{summary['accuracy_sampled_after']:.3f}"
        )
    lines.append(
        f"  RL: {summary['steps']} steps, {summary['rollouts']} rollouts "
        f"({config.problems_per_step} problems x {config.curriculum.num_rounds} rounds x "
        f"{config.curriculum.group_size} per step)"
    )
    return "\n".join(lines)


def lr_factor(step: int, kind: str, warmup_steps: int, total_steps: int) -> float:
    """The LR multiplier after ``step`` scheduler steps: linear warm-up, then the schedule."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return {
        "constant": 1.0,
        "linear": 1.0 - progress,
        "cosine": 0.5 * (1.0 + math.cos(math.pi * progress)),
    }[kind]


# -- helpers -----------------------------------------------------------------------------------


def _env_kwargs(config: TrainConfig, tokenizer: Any) -> dict[str, Any]:
    ec = config.env
    difficulty = tuple(ec.difficulty) if isinstance(ec.difficulty, list) else ec.difficulty
    return {
        "dataset": ec.dataset, "data_path": ec.data_path, "split": ec.split, "limit": ec.limit,
        "num_problems": ec.num_problems, "difficulty": difficulty, "families": ec.families,
        "procedural_seed": ec.procedural_seed, "hint_unit": ec.hint_unit,
        "placement": ec.placement, "template": ec.template, "tokenizer": tokenizer,
        "system_prompt": ec.system_prompt, "timeout_s": ec.timeout_s,
        "format_reward": ec.format_reward,
    }  # fmt: skip


def _make_env(config: TrainConfig, tokenizer: Any) -> Curriculum:
    cc = config.curriculum
    env = MathHintEnv(**_env_kwargs(config, tokenizer))
    return make_curriculum(
        cc.name, env, num_rounds=cc.num_rounds, group_size=cc.group_size, seed=config.seed,
        **cc.options,
    )  # fmt: skip


def _make_eval_env(
    config: TrainConfig, tokenizer: Any, train_env: MathHintEnv
) -> tuple[MathHintEnv, list[str]]:
    """Held-out problems: procedural ones from another seed minus any seen in training."""
    ec, kwargs = config.eval, _env_kwargs(config, tokenizer)
    if ec.dataset is None and config.env.dataset == "procedural":
        seen = {p.question for p in train_env.problems}
        fresh = _procedural(
            4 * ec.num_problems + 100,
            ec.procedural_seed,
            config.env.difficulty,
            config.env.families,
        )
        held_out = [p for p in fresh if p.question not in seen][: ec.num_problems]
        env = MathHintEnv(problems=held_out, **_render_kwargs(kwargs))
    else:
        dataset, data_path = eval_source(config)
        kwargs.update(dataset=dataset, split=ec.split, data_path=data_path,
                      limit=ec.num_problems)  # fmt: skip
        env = MathHintEnv(**kwargs)
    return env, list(env.problem_ids[: ec.num_problems])


def _render_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = ("hint_unit", "placement", "template", "tokenizer", "system_prompt", "timeout_s")
    return {k: kwargs[k] for k in keys}


def _make_generator(
    config: TrainConfig, model: Any, tokenizer: Any, params: SamplingParams, *, seed: int
) -> Any:
    gc = config.generation
    if gc.backend == "vllm":
        from seele_agents.vllm_generation import VLLMGenerator

        return VLLMGenerator(model, tokenizer, params, seed=seed)
    return TransformersGenerator(model, tokenizer, params, batch_size=gc.batch_size, seed=seed)


def warm_up(
    config: TrainConfig,
    model: Any,
    tokenizer: Any,
    folder: Path,
    *,
    fresh: bool,
    echo: Any,
    world: World | None = None,
) -> None:
    """SFT warm-up; its result is saved so a resumed run gets the same reference model.

    Every rank runs the same warm-up (the caller then broadcasts rank 0's weights); rank 0
    saves it.
    """
    from seele_agents.sft import sft_examples, sft_warmup

    world = world or World()

    if not fresh and folder.exists():
        from safetensors.torch import load_model

        load_model(model, str(folder / "model.safetensors"))
        return
    sc = config.sft
    families = sc.families or config.env.families
    problems = _procedural(sc.num_problems, sc.procedural_seed, sc.difficulty, families)
    checkable = sc.target_step_accuracy > 0 and _checkable(config)
    check = _skill_check(config, model, tokenizer) if checkable else None
    echo(
        f"supervised warm-up: at most {sc.steps} steps on {len(problems)} procedural problems"
        + (
            f", until greedy per-step accuracy on {sc.check_problems} check problems reaches "
            f"{sc.target_step_accuracy:g} (checked every {sc.check_every} steps)"
            if check
            else ""
        )
    )
    if sc.target_step_accuracy > 0 and check is None:
        echo(
            f"  no skill check (sft.target_step_accuracy={sc.target_step_accuracy:g}): it grades "
            f"procedural chain problems ({', '.join(CHAIN_FAMILIES)}) and env.families is "
            f"{config.env.families!r}; the warm-up runs all {sc.steps} steps"
        )
    bar = _progress(config.log.progress and world.is_main, 0, sc.steps, "warm-up")
    checked: list[tuple[int, float]] = []

    def advance(step: int, loss: float) -> bool:
        if bar is not None:
            bar.set_postfix({"loss": f"{loss:.3f}"}, refresh=False)
            bar.update(1)
        if check is None or step % sc.check_every or step == sc.steps:
            return False
        checked.append((step, check()))
        if bar is None:
            echo(f"  step {step}: loss {loss:.3f}, per-step accuracy {checked[-1][1]:.3f}")
        else:
            bar.set_postfix({"loss": f"{loss:.3f}", "step acc": f"{checked[-1][1]:.3f}"})
        return checked[-1][1] >= sc.target_step_accuracy

    try:
        metrics = sft_warmup(
            model, tokenizer, sft_examples(problems, template=config.env.template),
            steps=sc.steps, batch_size=sc.batch_size, lr=sc.lr, seed=config.seed, on_step=advance,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    echo("  " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))
    if checked:
        step, accuracy = checked[-1]
        reached = accuracy >= sc.target_step_accuracy
        echo(
            f"  skill check: per-step accuracy {accuracy:.3f} at step {step}, "
            + ("target reached" if reached else f"target {sc.target_step_accuracy:g} not reached")
            + f" ({', '.join(f'{a:.2f}' for _, a in checked)} every {sc.check_every} steps)"
        )
    if world.is_main:
        _save_weights(model, folder)
    barrier(world)


def _procedural(
    n: int, seed: int, difficulty: int | list[int], families: list[str] | None
) -> list[Any]:
    """``n`` procedural problems as a config section describes them (``null`` families: all)."""
    level = tuple(difficulty) if isinstance(difficulty, list) else difficulty
    kinds = {"families": tuple(families)} if families else {}
    return generate_problems(n, seed=seed, difficulty=level, **kinds)


def _checkable(config: TrainConfig) -> bool:
    """Whether the warm-up's skill check can grade the training problems step by step."""
    families = config.env.families or list(FAMILIES)
    return config.env.dataset == "procedural" and set(families) <= set(CHAIN_FAMILIES)


def _skill_check(config: TrainConfig, model: Any, tokenizer: Any) -> Any:
    """A function measuring the warm-up's skill: mean greedy per-step accuracy
    (:func:`~seele_env.procedural.check_steps`) on ``sft.check_problems`` chain problems drawn
    like the training ones (``env.families`` at ``env.difficulty``) from their own seed, never
    the held-out evaluation problems. Every rank computes the same (same weights, greedy)."""
    from seele_env.hints import render_prompt

    sc, ec = config.sft, config.env
    problems = _procedural(
        sc.check_problems, sc.procedural_seed + 1_000, ec.difficulty, ec.families
    )
    requests = [
        GenerationRequest(
            render_prompt(p.question, "", template=ec.template, tokenizer=tokenizer)[0]
        )
        for p in problems
    ]
    params = SamplingParams(max_new_tokens=config.generation.max_new_tokens, temperature=0)
    generator = TransformersGenerator(
        model, tokenizer, params, batch_size=config.generation.batch_size
    )

    def check() -> float:
        model.eval()
        try:
            samples = generator.generate(requests, params)
        finally:
            model.train()
        verdicts = [
            v for p, s in zip(problems, samples, strict=True) for v in check_steps(p, s.text)
        ]
        return sum(verdicts) / len(verdicts)

    return check


def _save_weights(model: Any, folder: Path) -> None:
    from safetensors.torch import save_model

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_model(model, str(tmp / "model.safetensors"))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


# Rollout metrics that are totals over the step's batch, so over all ranks.
_SUMMED = ("rollout/episodes", "rollout/generated_tokens")


class _NoLogger:
    """The metrics logger of ranks other than 0."""

    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        pass

    def close(self) -> None:
        pass


def _evaluate(run: Run, bar: Any = None) -> dict[str, float]:
    """Held-out accuracy with no hint: greedy, sampled at the training temperature (avg@k over
    ``eval.samples`` completions per problem) and, on chain problems, per step.

    With several processes each evaluates every W-th problem and the counts are summed.
    """
    ec, gc, world = run.config.eval, run.config.generation, run.world
    max_new_tokens = ec.max_new_tokens or gc.max_new_tokens
    greedy = SamplingParams(max_new_tokens=max_new_tokens, temperature=0)
    ids = run.eval_ids[world.rank :: world.size]
    problems = run.eval_env.unwrapped.problems
    # greedy right, n, steps right, steps, sampled right, sampled n, sampled steps right, steps
    counts = torch.zeros(8, dtype=torch.float64)
    result = _evaluate_call(run, ids, greedy, bar=bar)
    counts[0], counts[1] = sum(result["correct"]), len(ids)
    for pid, text in zip(ids, result["completions"], strict=True):
        steps = _step_verdicts(problems.get(pid), text)
        counts[2], counts[3] = counts[2] + sum(steps), counts[3] + len(steps)
    if ec.samples and gc.temperature > 0:
        sampled = SamplingParams(max_new_tokens, gc.temperature, gc.top_p, gc.top_k)
        repeated = [p for p in ids for _ in range(ec.samples)]
        with _own_stream(run):
            result = _evaluate_call(run, repeated, sampled, bar=bar)
        counts[4], counts[5] = sum(result["correct"]), len(result["correct"])
        for pid, text in zip(repeated, result["completions"], strict=True):
            steps = _step_verdicts(problems.get(pid), text)
            counts[6], counts[7] = counts[6] + sum(steps), counts[7] + len(steps)
    counts = all_reduce_sum(counts, world)
    metrics = {"eval/accuracy": float(counts[0] / counts[1]) if counts[1] else float("nan")}
    if counts[3]:
        metrics["eval/step_accuracy"] = float(counts[2] / counts[3])
    if counts[5]:
        metrics["eval/accuracy_sampled"] = float(counts[4] / counts[5])
    if counts[7]:
        metrics["eval/step_accuracy_sampled"] = float(counts[6] / counts[7])
    return metrics


def _curve_points(run: Run) -> int:
    """L of the hint curve: the most solution steps of a held-out problem, or 4 (quarters) when
    that is more than 8."""
    env = run.eval_env.unwrapped
    n_units = max(env.reset(options={"problem_id": p})[1]["n_units"] for p in run.eval_ids)
    return n_units if n_units <= 8 else 4


def _hint_curve(run: Run, points: int, params: SamplingParams, bar: Any = None) -> dict[str, float]:
    """Held-out accuracy with 0, 1, ..., L solution steps given as a hint (rate k/L,
    L = ``points``), one answer per problem: how far the model is from solving alone."""
    world = run.world
    ids = run.eval_ids[world.rank :: world.size]
    curve = {}
    for k in range(points + 1):
        correct = _evaluate_call(run, ids, params, hint_rate=k / points, bar=bar)["correct"]
        counts = all_reduce_sum(torch.tensor([sum(correct), len(ids)], dtype=torch.float64), world)
        curve[f"{k}/{points}"] = float(counts[0] / counts[1]) if counts[1] else float("nan")
    return curve


@contextmanager
def _own_stream(run: Run) -> Iterator[None]:
    """Sample for an evaluation, then put the training's sampling stream back where it was, so
    a run resumed from a checkpoint written after an evaluation samples what an uninterrupted
    run samples."""
    stream = run.generator.get_rng_state()
    try:
        yield
    finally:
        run.generator.set_rng_state(stream)


def _evaluate_call(
    run: Run, ids: list[str], params: SamplingParams, hint_rate: float = 0.0, bar: Any = None
) -> dict[str, Any]:
    if not ids:  # nothing to do here, but a sharded generate is collective
        run.generator.generate([], params)
        return {"correct": [], "completions": []}
    result = evaluate(run.eval_env, run.generator, ids, params, hint_rate=hint_rate)
    if bar is not None:
        bar.update(len(ids))
    return result


def _step_verdicts(problem: Any, completion: str) -> list[bool]:
    """Per-step verdicts on chain problems (:func:`~seele_env.procedural.check_steps`), else []."""
    metadata = problem.metadata or {}
    return check_steps(problem, completion) if "operations" in metadata else []


def _save(run: Run, step: int, summary: dict[str, Any], *, gather: bool = True) -> Path:
    """Rank 0 writes the checkpoint (with every rank's sampling RNG when ``gather``), the
    others wait for it; returns its path on every rank."""
    from transformers.utils import logging as hf_logging

    out, world = Path(run.config.output_dir), run.world
    if gather:
        _check_in_sync(run)
    rng = run.generator.get_rng_state()
    streams = all_gather_objects(rng, world) if gather else [rng]
    model, optimizer = run.model, run.optimizer
    if is_sharded(run.model):  # gathered whole (collectives), in the one-process layout
        model = _FullWeights(run.model)
        optimizer = _FixedState(full_optimizer_state(run.model, run.optimizer))
    path = checkpoint_path(out, step)
    if world.is_main:
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # save_pretrained's shard bar would break our own bar
        try:
            path = _save_checkpoint(run, out, step, summary, streams, model, optimizer)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        prune_checkpoints(out, run.config.keep_checkpoints)
    if gather:
        barrier(world)
    return path


class _FullWeights:
    """A sharded model's full weights (gathered on creation, a collective) to save_pretrained."""

    def __init__(self, model: Any) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        self.model = model
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)
        # A tied weight (e.g. the LM head's, the embedding's) is saved once, as save_pretrained
        # does for an unsharded model.
        every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
        aliases = every - {name for name, _ in model.named_parameters()}
        self.state = {k: v for k, v in state.items() if k not in aliases}

    def save_pretrained(self, folder: Path) -> None:
        self.model.save_pretrained(folder, state_dict=self.state)


class _FixedState:
    """An optimiser state already gathered, for save_checkpoint."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


def _check_in_sync(run: Run) -> None:
    """Raise if any rank's trainable parameters differ from rank 0's (they never should:
    every rank applies the same summed gradient), so a diverged run is not saved as one.
    Sharded (FSDP) parameters are different shards by design and are not compared."""
    if run.world.size == 1 or is_sharded(run.learner.model):
        return
    params = run.learner.trainable_parameters()
    with torch.no_grad():
        mine = torch.stack([p.detach().double().sum() for p in params]).cpu()
    every = all_gather_objects(mine, run.world)
    gap = max(float((other - every[0]).abs().max()) for other in every)
    if gap != 0:
        raise RuntimeError(
            f"the {run.world.size} processes' parameters differ (largest gap between per-tensor "
            f"sums: {gap:.3g}); something broke the gradient all-reduce. Not saving."
        )


def _save_checkpoint(
    run: Run,
    out: Path,
    step: int,
    summary: dict[str, Any],
    streams: list[torch.Tensor],
    model: Any,
    optimizer: Any,
) -> Path:
    return save_checkpoint(
        out, step, model=model, optimizer=optimizer, scheduler=run.scheduler,
        tokenizer=run.tokenizer,
        state={"curriculum": run.env.state_dict(), "summary": summary,
               "config": config_to_dict(run.config), "world_size": run.world.size},
        extra={"generator_rng": streams[0], "generator_rng_ranks": streams,
               "learner": run.learner.state_dict()},
    )  # fmt: skip


def _progress(
    enabled: bool, start: int, total: int, desc: str = "train", unit: str = "step"
) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # An evaluation's bar goes once done: the lines printed after it say what it measured.
    leave = unit == "step"
    return tqdm(total=total, initial=start, desc=desc, unit=unit, dynamic_ncols=True, leave=leave)


def _advance(progress: Any, metrics: dict[str, float], echo: Any, step: int) -> None:
    shown = {
        "reward": metrics["reward/mean"],
        "hint": metrics["curriculum/hint_rate"],
        "tok/s": metrics["time/tokens_per_s"],
    }
    if progress is not None:
        progress.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        progress.update(1)
    else:
        echo(f"step {step}: " + ", ".join(f"{k} {v:.3g}" for k, v in shown.items()))
