"""The training loop: a model, an env with a curriculum, a learner, checkpoints and metrics.

:func:`train` reads top to bottom: build everything (:func:`~seele_agents.training.build.build`:
model, optional supervised warm-up, envs, optimiser, generator, learner), resume if asked, then
:func:`loop`: evaluate, and per training step (:func:`_train_steps`)
:func:`~seele_agents.training.rollout.collect_rollouts` (the curriculum picks each round's hint
rates; the generator samples; the env verifies) -> ``learner.step`` (advantages and the clipped
loss, :mod:`seele_agents.algos`) -> log -> checkpoint, and a final evaluation and plot. The
learner is the one ``algo.name`` names (:data:`~seele_agents.algos.registry.LEARNERS`); all
share the rollouts, the loss code and this loop.
With the default :class:`~seele_agents.config.TrainConfig` this is the embedded CPU demo: a tiny
Llama built locally, SFT on easy procedural problems, GRPO + SEELE on harder ones.

Ctrl-C during training saves a checkpoint of the last finished step before exiting, and
``resume=`` continues exactly where a checkpoint left off (same parameters, curriculum state,
sampling RNG and optimiser state as an uninterrupted run).

Started by ``torchrun`` or ``accelerate launch``, :func:`train` runs data-parallel
(:mod:`seele_agents.training.distributed`): every rank rolls out its shard of each step's problems,
the curricula record every rank's outcomes, gradients are summed over ranks; rank 0 alone logs,
prints and writes checkpoints, which any number of processes can resume.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from seele_agents._moved import forwarding
from seele_agents.config import TrainConfig, check_data_sources, config_to_dict, save_config
from seele_agents.generation import SamplingParams
from seele_agents.models import resolve_device
from seele_agents.training.build import Run, build, seed_everything, set_threads
from seele_agents.training.checkpoint import (
    FILES,
    RunExistsError,  # noqa: F401  (public here too: callers of train() catch it)
    checkpoint_path,
    is_intact,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    refuse_to_mix,
    resolve_resume,
    save_checkpoint,
)
from seele_agents.training.distributed import (
    FixedState,
    FullWeights,
    World,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    check_in_sync,
    full_optimizer_state,
    is_sharded,
    load_optimizer_state,
    reduce_metrics,
    setup,
    teardown,
)
from seele_agents.training.interrupts import Boundary, Interrupts, Terminated  # noqa: F401  (Terminated: public here)
from seele_agents.training.rollout import collect_rollouts, evaluate
from seele_agents.training.samples import sample_rows
from seele_agents.training.tracking import MetricsLogger, progress_bar, read_metrics
from seele_env.procedural import check_steps

# Names that lived here before the factories and the warm-up moved out.
__getattr__ = forwarding(
    __name__,
    moved={
        "make_learner": "seele_agents.training.build:make_learner",
        "make_optimizer": "seele_agents.training.build:make_optimizer",
        "lr_factor": "seele_agents.training.build:lr_factor",
        "warm_up": "seele_agents.training.sft:warm_up",
        "SFT_FOLDER": "seele_agents.training.sft:SFT_FOLDER",
    },
)


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
        run = build(
            config, warm_start=checkpoint is None, echo=echo, world=world, checkpoint=checkpoint
        )
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
    for key, value in (
        ("problems_per_step", config.problems_per_step),
        ("algo.minibatch_size", config.algo.minibatch_size),
    ):
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
        checkpoint,
        model=None if sharded else run.model,
        optimizer=None if sharded else run.optimizer,
        scheduler=run.scheduler,
    )
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


def loop(run: Run, start_step: int, state: dict[str, Any], echo: Any = print) -> dict[str, Any]:
    """The training steps from ``start_step``, then the final evaluation and plot.

    SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers send) stop the run with the
    checkpoint of the last finished step saved (:class:`Boundary`), then raise
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
            out,
            tensorboard=lc.tensorboard,
            wandb=lc.wandb,
            trackio=lc.trackio,
            project=lc.project,
            config=config_to_dict(config),
            resume_step=start_step if state else None,
            echo=echo,
        )
    boundary = Boundary(run, start_step)
    try:
        with Interrupts(boundary, echo):
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
        from seele_agents.training.plots import plot_training

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
    boundary: Boundary,
    echo: Any,
) -> None:
    """Steps ``start_step + 1 .. config.steps``: rollouts -> update -> log (metrics, and every
    ``log.samples_every`` steps a few of the rollouts) -> checkpoint."""
    config, world = run.config, run.world
    progress = progress_bar(config.log.progress and world.is_main, start_step, config.steps)
    try:
        for step in range(start_step + 1, config.steps + 1):
            started = time.perf_counter()
            batch = collect_rollouts(
                run.env,
                run.generator,
                num_problems=config.problems_per_step,
                num_rounds=config.curriculum.num_rounds,
                group_size=config.curriculum.group_size,
                world=world,
            )
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
                rows = sample_rows(
                    batch, run.env.unwrapped, run.tokenizer, step=step, limit=lc.samples_per_step
                )
                logger.log_samples(step, rows)
            _advance(progress, metrics, echo, step)
            boundary.finish(step)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                _save(run, step, summary)
            boundary.raise_pending()
    finally:
        if progress is not None:
            progress.close()


def _save_interrupted(run: Run, boundary: Boundary, summary: dict[str, Any], echo: Any) -> None:
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
        echo(
            "\ninterrupted: a sharded (FSDP) run cannot gather its weights once interrupted; "
            "its last periodic checkpoint stands"
        )
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
    bar = progress_bar(
        run.config.log.progress and world.is_main, 0, answers, f"eval {when}", "answer"
    )
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


# -- helpers -----------------------------------------------------------------------------------


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
        check_in_sync(run.learner, run.world)
    rng = run.generator.get_rng_state()
    streams = all_gather_objects(rng, world) if gather else [rng]
    model, optimizer = run.model, run.optimizer
    if is_sharded(run.model):  # gathered whole (collectives), in the one-process layout
        model = FullWeights(run.model)
        optimizer = FixedState(full_optimizer_state(run.model, run.optimizer))
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
        out,
        step,
        model=model,
        optimizer=optimizer,
        scheduler=run.scheduler,
        tokenizer=run.tokenizer,
        state={
            "curriculum": run.env.state_dict(),
            "summary": summary,
            "config": config_to_dict(run.config),
            "world_size": run.world.size,
        },
        extra={
            "generator_rng": streams[0],
            "generator_rng_ranks": streams,
            "learner": run.learner.state_dict(),
        },
    )


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
