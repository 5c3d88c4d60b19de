"""Supervised warm-up: teach a model the solution format before RL.

RL from 0/1 rewards learns nothing while every rollout fails, so a model built from scratch
(:mod:`seele_agents.models.tiny`) is first trained by next-token cross-entropy on worked solutions.
:func:`sft_examples` turns problems into ``(prompt, response)`` pairs; :func:`sft_batch` builds
the tensors (the loss covers the response and the end-of-sequence token after it, never the
prompt); :func:`sft_warmup` runs AdamW for a fixed number of steps; :func:`sft_loss` measures
the same loss without training.

:func:`warm_up` is ``seele train``'s warm-up (``sft.*``): procedural problems, an optional skill
check that stops it once greedy per-step accuracy reaches ``sft.target_step_accuracy``, and the
weights saved atomically in the run's folder (:data:`SFT_FOLDER`).

Prompt and response are tokenised separately and concatenated, exactly as a generator sees a
prompt followed by what the model writes, so the warm-up trains the token boundaries RL samples.

Example:
    >>> from seele_agents.models.tiny import TinyConfig, build_tiny
    >>> from seele_env.procedural import generate_problems
    >>> config = TinyConfig(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)
    >>> model, tokenizer = build_tiny(seed=0, config=config)
    >>> examples = sft_examples(generate_problems(8, seed=0, difficulty=1))
    >>> examples[0][0]
    'Problem: Compute (9 * 3) - 4.\\nSolution:\\n'
    >>> metrics = sft_warmup(model, tokenizer, examples, steps=3, batch_size=4, lr=1e-3)
    >>> sorted(metrics)
    ['sft/loss_first', 'sft/loss_last', 'sft/seconds', 'sft/steps', 'sft/tokens']
    >>> model.training
    False
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from seele_agents.config import TrainConfig
from seele_agents.files import atomic_folder
from seele_agents.generation import GenerationRequest, SamplingParams, TransformersGenerator
from seele_agents.training.distributed import World, barrier
from seele_agents.training.tracking import progress_bar
from seele_env.hints import render_prompt
from seele_env.problems import Problem
from seele_env.procedural import CHAIN_FAMILIES, FAMILIES, check_steps, generate_problems

SFT_FOLDER = "sft_model"
"""The warm-up's weights in a run's output folder, so a resumed run starts from the same model."""

IGNORE_INDEX = -100
"""Label of a position that carries no loss (prompt and padding), as PyTorch's cross-entropy."""

Example = tuple[str, str]
"""A supervised example: ``(prompt, response)``."""


def sft_examples(
    problems: Sequence[Problem], template: str = "plain", *, tokenizer: Any = None
) -> list[Example]:
    """``(prompt, response)`` pairs: the rendered question and the worked solution.

    The response is the solution text as is; the end-of-sequence token is added at
    tokenisation (:func:`sft_batch`).

    Args:
        problems: Problems with a reference solution.
        template: Prompt template, as in :func:`seele_env.hints.render_prompt`.
        tokenizer: Needed only for ``template="chat"``.

    Returns:
        One pair per problem, in order.

    Raises:
        ValueError: If a problem has no solution.
    """
    examples = []
    for problem in problems:
        if not problem.solution:
            raise ValueError(
                f"problem {problem.id!r} has no reference solution to imitate; SFT needs "
                "worked solutions (drop answer-only problems before calling sft_examples)."
            )
        prompt, _ = render_prompt(problem.question, "", template=template, tokenizer=tokenizer)
        examples.append((prompt, problem.solution))
    return examples


def tokenize_example(tokenizer: Any, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one example: prompt + response + EOS, loss on all but the prompt.

    Example:
        >>> from seele_agents.models.tiny import build_tokenizer
        >>> tokenizer = build_tokenizer(["Problem: Solution: Step"], vocab_size=300)
        >>> ids, labels = tokenize_example(tokenizer, "Problem: 1\\n", "2")
        >>> labels == [IGNORE_INDEX] * (len(ids) - 2) + ids[-2:]
        True
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; set one so responses can end.")
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    response_ids.append(tokenizer.eos_token_id)
    return prompt_ids + response_ids, [IGNORE_INDEX] * len(prompt_ids) + response_ids


def sft_batch(
    tokenized: Sequence[tuple[list[int], list[int]]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Right-pad tokenised examples into ``input_ids``, ``attention_mask`` and ``labels``.

    Labels are unshifted (position t labels token t); the loss shifts them. Padding gets
    ``pad_token_id`` as input, 0 in the mask and :data:`IGNORE_INDEX` as label.
    """
    length = max(len(ids) for ids, _ in tokenized)
    input_ids = torch.full((len(tokenized), length), pad_token_id, dtype=torch.long)  # [B, T]
    labels = torch.full((len(tokenized), length), IGNORE_INDEX, dtype=torch.long)  # [B, T]
    attention_mask = torch.zeros((len(tokenized), length), dtype=torch.long)  # [B, T]
    for row, (ids, row_labels) in enumerate(tokenized):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = torch.tensor(row_labels)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _token_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over labelled positions, and their count."""
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).logits  # [B, T, V]
    targets = batch["labels"][:, 1:]  # [B, T-1]: token t+1 is predicted at position t
    n_tokens = int((targets != IGNORE_INDEX).sum())
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
    )
    return loss, n_tokens


def _tokenize_all(
    tokenizer: Any, model: Any, examples: Sequence[Example]
) -> list[tuple[list[int], list[int]]]:
    if not examples:
        raise ValueError("examples is empty; pass at least one (prompt, response) pair.")
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad_token; set one (distinct from eos) to batch.")
    max_length = getattr(model.config, "max_position_embeddings", None)
    tokenized = [tokenize_example(tokenizer, prompt, response) for prompt, response in examples]
    for i, (ids, _) in enumerate(tokenized):
        if max_length is not None and len(ids) > max_length:
            raise ValueError(
                f"example {i} is {len(ids)} tokens long, more than the model's "
                f"max_position_embeddings={max_length}; drop or shorten it."
            )
    return tokenized


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless batches of indices: shuffled epochs, refilled as they run out."""
    order: list[int] = []
    while True:
        while len(order) < batch_size:
            order += torch.randperm(n, generator=generator).tolist()
        batch, order = order[:batch_size], order[batch_size:]
        yield batch


def _lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over the first 10% of steps, then cosine decay to 10% of the peak."""
    warmup = max(1, steps // 10)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def sft_warmup(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    device: str | torch.device | None = None,
    on_step: Callable[[int, float], bool | None] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place by next-token cross-entropy on the responses of ``examples``.

    Each step draws ``batch_size`` examples (shuffled epochs from a ``torch.Generator`` seeded
    by ``seed``), right-pads them and takes one AdamW step (betas 0.9/0.95, no weight decay,
    gradient norm clipped to 1) on the mean loss over response tokens and the EOS after each
    response; prompt tokens and padding carry no loss. The learning rate warms up linearly over
    the first 10% of steps, then decays by a cosine to 10% of ``lr``.

    The model is put in train mode for the warm-up and left in **eval mode** afterwards: what
    follows a warm-up (evaluation, RL rollouts) generates, and generation wants eval mode.

    Args:
        model: A causal LM returning ``.logits`` (e.g. from
            :func:`seele_agents.models.tiny.build_tiny`).
        tokenizer: Its tokenizer; needs ``eos_token_id`` and ``pad_token_id``.
        examples: ``(prompt, response)`` pairs, e.g. from :func:`sft_examples`.
        steps: Optimiser steps (>= 1).
        batch_size: Examples per step (>= 1).
        lr: Peak learning rate (> 0).
        seed: Seed of the batch order.
        device: Where to run; the model's device when ``None`` (the model is moved there).
        on_step: Called after every step as ``on_step(step, loss)``, step counting from 1; when
            it returns ``True`` the warm-up stops there (e.g. once a skill check passes).

    Returns:
        Metrics: ``sft/loss_first`` and ``sft/loss_last`` (the loss of the first and last
        batch), ``sft/steps`` (taken, fewer than ``steps`` when ``on_step`` stopped early),
        ``sft/tokens`` (labelled tokens trained on, summed over steps)
        and ``sft/seconds`` (wall time).

    Raises:
        ValueError: On empty ``examples``, a non-positive ``steps``, ``batch_size`` or ``lr``,
            a tokenizer without EOS or padding, or an example longer than the model's context.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an int >= 1.")
    if not lr > 0:
        raise ValueError(f"lr={lr!r} must be > 0 (typical: 5e-3 for the default tiny model).")
    start = time.perf_counter()
    tokenized = _tokenize_all(tokenizer, model, examples)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, steps))

    model.train()
    losses, n_trained = [], 0
    batches = _batches(len(tokenized), batch_size, generator)
    for step in range(1, steps + 1):
        batch = sft_batch([tokenized[i] for i in next(batches)], tokenizer.pad_token_id)
        batch = {key: value.to(device) for key, value in batch.items()}
        loss, n_tokens = _token_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        n_trained += n_tokens
        if on_step is not None and on_step(step, losses[-1]):
            break
    model.eval()
    return {
        "sft/loss_first": losses[0],
        "sft/loss_last": losses[-1],
        "sft/steps": float(len(losses)),
        "sft/tokens": float(n_trained),
        "sft/seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def sft_loss(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> float:
    """Mean next-token cross-entropy per response token (EOS included) over ``examples``.

    The quantity :func:`sft_warmup` minimises, averaged over all labelled tokens of all
    examples, without gradients; the model's train/eval mode is left as it was.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1.")
    tokenized = _tokenize_all(tokenizer, model, examples)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    total, count = 0.0, 0
    for begin in range(0, len(tokenized), batch_size):
        batch = sft_batch(tokenized[begin : begin + batch_size], tokenizer.pad_token_id)
        loss, n_tokens = _token_loss(model, {k: v.to(device) for k, v in batch.items()})
        total += loss.item() * n_tokens
        count += n_tokens
    return total / count


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
    world = world or World()
    if not fresh and folder.exists():
        from safetensors.torch import load_model

        load_model(model, str(folder / "model.safetensors"))
        return
    sc = config.sft
    families = sc.families or config.env.families
    problems = procedural_problems(sc.num_problems, sc.procedural_seed, sc.difficulty, families)
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
    bar = progress_bar(config.log.progress and world.is_main, 0, sc.steps, "warm-up")
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


def procedural_problems(
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
    sc, ec = config.sft, config.env
    problems = procedural_problems(
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
    """The warm-up's weights, written atomically (a crash leaves the old folder or none)."""
    from safetensors.torch import save_model

    with atomic_folder(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
