"""Everything ``seele train`` builds before its first step, from a :class:`TrainConfig`.

:func:`build` returns a :class:`Run`: the model (warmed up by
:func:`seele_agents.training.sft.warm_up` when ``sft.steps > 0``, with LoRA, sharded under FSDP),
the training env wrapped in its curriculum, the held-out evaluation env, the optimiser and its
schedule, the generator and the learner. Each part has its own small factory (:func:`make_model`,
:func:`make_env`, :func:`make_eval_env`, :func:`make_optimizer`, :func:`make_learner`,
:func:`make_generator`), usable alone; learners come from
:data:`seele_agents.algos.registry.LEARNERS`.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seele_agents.algos.learner import PolicyLearner
from seele_agents.algos.ppo import ValueHead
from seele_agents.algos.registry import LEARNERS, learner_class
from seele_agents.config import TrainConfig, eval_source
from seele_agents.generation import SamplingParams, TransformersGenerator
from seele_agents.models import (
    apply_lora,
    enable_gradient_checkpointing,
    load_model,
    resolve_device,
)
from seele_agents.training.checkpoint import load_weights
from seele_agents.training.distributed import (
    GatheredGenerator,
    World,
    broadcast_module,
    shard_model,
)
from seele_agents.training.sft import SFT_FOLDER, procedural_problems, warm_up
from seele_env.curricula import Curriculum, make_curriculum
from seele_env.env import MathHintEnv
from seele_env.hints import Rendering


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


def build(
    config: TrainConfig,
    *,
    warm_start: bool = True,
    echo: Any = print,
    world: World | None = None,
    checkpoint: Path | None = None,
) -> Run:
    """Set up model, envs, optimiser, generator and learner (and the SFT warm-up when
    configured): :func:`make_model`, :func:`make_env`, :func:`make_eval_env`,
    :func:`make_optimizer`, :func:`make_generator`, :func:`make_learner`."""
    world = world or World()
    fsdp = config.distributed.strategy == "fsdp" and world.size > 1
    model, tokenizer, ref_model = make_model(
        config, warm_start=warm_start, echo=echo, world=world, checkpoint=checkpoint
    )
    env = make_env(config, tokenizer)
    eval_env, eval_ids = make_eval_env(config, tokenizer, env.unwrapped)
    oc, ac = config.optim, config.algo
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    value_head = ValueHead.for_model(model) if LEARNERS[ac.name].value_head else None
    if value_head is not None:  # a new layer: its own (higher) learning rate
        groups.append({"params": list(value_head.parameters()), "lr": ac.value_lr or oc.lr})
        broadcast_module(value_head, world)
    optimizer = make_optimizer(groups, oc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, oc.scheduler, oc.warmup_steps, config.steps)
    )
    gc = config.generation
    params = SamplingParams(gc.max_new_tokens, gc.temperature, gc.top_p, gc.top_k)
    generator = make_generator(config, model, tokenizer, params, seed=config.seed + world.rank)
    if fsdp:
        generator = GatheredGenerator(generator, model)
    learner = make_learner(
        config, model, optimizer, scheduler, value_head, world=world, ref_model=ref_model
    )
    parts = (env, eval_env, eval_ids, generator, learner, optimizer, scheduler)
    return Run(config, model, tokenizer, *parts, world)


def make_model(
    config: TrainConfig,
    *,
    warm_start: bool = True,
    echo: Any = print,
    world: World | None = None,
    checkpoint: Path | None = None,
) -> tuple[Any, Any, Any]:
    """``(model, tokenizer, ref_model)``: ``model.*`` loaded, warmed up (``sft.*``; loaded from
    the run's folder when not ``warm_start``), with gradient checkpointing and LoRA as asked.

    With several processes every rank builds the same, then takes rank 0's weights; with
    ``distributed.strategy=fsdp`` the model (and a reference model, when ``algo.beta > 0``) are
    then sharded, after the weights of ``checkpoint`` (when resuming) are loaded whole. Without
    FSDP ``ref_model`` is ``None``: the learner copies the model itself.
    """
    mc, world = config.model, world or World()
    device = resolve_device(mc.device)
    if device.type == "cuda" and world.size > 1 and device.index is None:
        device = torch.device("cuda", world.local_rank)  # one GPU per rank on each machine
    model, tokenizer = load_model(
        mc.name, dtype=mc.dtype, device=str(device), revision=mc.revision, seed=config.seed
    )
    if config.sft.steps > 0:
        folder = Path(config.output_dir) / SFT_FOLDER
        warm_up(config, model, tokenizer, folder, fresh=warm_start, echo=echo, world=world)
    if mc.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if mc.lora_rank > 0:
        lora = {"alpha": mc.lora_alpha, "dropout": mc.lora_dropout}
        model = apply_lora(model, rank=mc.lora_rank, target_modules=mc.lora_target_modules, **lora)
    broadcast_module(model, world)
    ref_model = None
    if config.distributed.strategy == "fsdp" and world.size > 1:
        if config.algo.beta > 0:  # the reference is the model before RL, as in the learner
            ref_model = shard_model(copy.deepcopy(model).eval().requires_grad_(False), world)
        if checkpoint is not None:
            load_weights(checkpoint, model)
        shard_model(model, world)
    return model, tokenizer, ref_model


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
    """The learner ``config.algo.name`` names (:data:`~seele_agents.algos.registry.LEARNERS`), with
    the options every learner shares and the ``algo.*`` fields its registration lists."""
    ac, gc = config.algo, config.generation
    spec = LEARNERS[ac.name]
    options = {name: getattr(ac, name) for name in spec.options}
    if spec.value_head:
        options["value_head"] = value_head
    return learner_class(ac.name)(
        model,
        optimizer,
        scheduler,
        loss_type=ac.loss,
        epsilon_low=ac.epsilon_low,
        epsilon_high=ac.epsilon_high,
        beta=ac.beta,
        gamma=ac.gamma,
        epochs=ac.epochs,
        minibatch_size=ac.minibatch_size,
        micro_batch_size=ac.micro_batch_size,
        max_grad_norm=config.optim.max_grad_norm,
        max_new_tokens=gc.max_new_tokens,
        temperature=gc.temperature,
        world=world or World(),
        ref_model=ref_model,
        **options,
    )


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


def make_rendering(config: TrainConfig, tokenizer: Any) -> Rendering:
    """The ``env.*`` rendering options (hint unit, placement, template, system prompt) with the
    model's tokenizer: shared by the training env and the evaluation env."""
    ec = config.env
    return Rendering(ec.hint_unit, ec.placement, ec.template, tokenizer, ec.system_prompt)


def _problem_source(config: TrainConfig) -> dict[str, Any]:
    """The ``env.*`` options that say which problems to load or generate."""
    ec = config.env
    difficulty = tuple(ec.difficulty) if isinstance(ec.difficulty, list) else ec.difficulty
    return {
        "dataset": ec.dataset,
        "data_path": ec.data_path,
        "split": ec.split,
        "limit": ec.limit,
        "num_problems": ec.num_problems,
        "difficulty": difficulty,
        "families": ec.families,
        "procedural_seed": ec.procedural_seed,
    }


def make_env(config: TrainConfig, tokenizer: Any) -> Curriculum:
    """The training env (``env.*``) wrapped in its curriculum (``curriculum.*``)."""
    ec, cc = config.env, config.curriculum
    env = MathHintEnv(
        **_problem_source(config),
        rendering=make_rendering(config, tokenizer),
        timeout_s=ec.timeout_s,
        format_reward=ec.format_reward,
    )
    rounds = {"num_rounds": cc.num_rounds, "group_size": cc.group_size}
    return make_curriculum(cc.name, env, **rounds, seed=config.seed, **cc.options)


def make_eval_env(
    config: TrainConfig, tokenizer: Any, train_env: MathHintEnv
) -> tuple[MathHintEnv, list[str]]:
    """The held-out env (``eval.*``), rendered as the training env is, and its problem ids:
    procedural problems from another seed minus any seen in training, or ``eval.dataset``."""
    ec = config.eval
    scoring = {"timeout_s": config.env.timeout_s, "format_reward": config.env.format_reward}
    if ec.dataset is None and config.env.dataset == "procedural":
        seen = {p.question for p in train_env.problems}
        fresh = procedural_problems(
            4 * ec.num_problems + 100,
            ec.procedural_seed,
            config.env.difficulty,
            config.env.families,
        )
        held_out = [p for p in fresh if p.question not in seen][: ec.num_problems]
        env = MathHintEnv(problems=held_out, rendering=train_env.rendering, **scoring)
    else:
        dataset, data_path = eval_source(config)
        source = _problem_source(config)
        source.update(dataset=dataset, split=ec.split, data_path=data_path, limit=ec.num_problems)
        env = MathHintEnv(**source, rendering=train_env.rendering, **scoring)
    return env, list(env.problem_ids[: ec.num_problems])


def make_generator(
    config: TrainConfig, model: Any, tokenizer: Any, params: SamplingParams, *, seed: int
) -> Any:
    """The generator ``generation.backend`` names, sampling with ``params`` from ``seed``."""
    gc = config.generation
    if gc.backend == "vllm":
        from seele_agents.generation.vllm import VLLMGenerator

        return VLLMGenerator(model, tokenizer, params, seed=seed)
    return TransformersGenerator(model, tokenizer, params, batch_size=gc.batch_size, seed=seed)
