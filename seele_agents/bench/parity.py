"""Train our GRPO and TRL's GRPOTrainer side by side from one start: held-out accuracy curves.

    seele bench parity                                   # the `seele train` settings, 3 seeds
    seele bench parity --seeds 1 --steps 4 --eval-every 2 --set problems_per_step=4
    seele bench parity --config my.yaml --set algo.loss=dapo --output-dir runs/parity-dapo

**One start.** The model of ``model.name`` gets ``seele train``'s supervised warm-up once
(:func:`seele_agents.training.sft.warm_up`, ``sft.*``); both sides of every seed start from copies
of it, and both use it as the KL reference (TRL loads it from ``<output-dir>/start_model``).

**The same training.** The settings are :class:`~seele_agents.config.TrainConfig`'s (defaults:
``seele train``'s demo; ``--config`` and ``--set`` as for ``seele train``) with one change:
the curriculum defaults to ``none`` (no hints), so both sides see the same prompts. Per step each
side draws ``problems_per_step`` problems uniformly from the same env (the same procedural
problems, each seed its own draw order; TRL's read-ahead means the two sides do not draw the
same problems in the same order), samples ``curriculum.num_rounds * curriculum.group_size``
completions of each at ``generation.*``'s temperature and length limit, scores them with the
env's verifier and takes one on-policy update: advantages over each problem's completions
(``algo.advantage``: TRL's ``scale_rewards`` "group" for grpo, "none" for dr_grpo), the same
loss (``algo.loss``, clip widths, ``algo.beta`` with the k3 KL and no KL bias correction),
optimiser (``optim.name`` AdamW or SGD, ``optim.lr``, betas, weight decay, gradient clipping)
and learning-rate schedule.

* ours: ``collect_rollouts`` -> ``learner.step`` -> ``generator.sync_weights``, the loop of
  ``seele train`` (:func:`seele_agents.training.build.make_learner`);
* TRL: ``GRPOTrainer`` fed by :class:`~seele_agents.integrations.trl.SEELEForTRL` (one round of
  ``num_rounds * group_size`` generations per problem: one advantage group per problem, as our
  pooled baseline has it).

Known differences that remain (``tests/test_trl_parity.py`` pins the first two): TRL's GRPO std
has Bessel's correction (``n - 1``) and eps 1e-4, ours is the population std with eps 1e-6;
TRL's learning-rate warm-up ramps from 0 (``step / warmup``), ours from ``1 / (warmup + 1)``;
TRL applies weight decay to no bias or norm weights, ours to all.

**What is measured.** Greedy held-out accuracy without hints (``eval.*``: the problems of
``seele train``'s evaluation) before training, every ``--eval-every`` steps and after, per side
and seed, and each step's training reward. Outputs in ``--output-dir``: ``parity.json`` (all of
it), ``parity.md`` (the table) and ``parity.png`` (both learning curves).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seele_agents.files import write_atomic

__all__ = ["ParitySettings", "add_arguments", "format_table", "plot_curves", "run", "run_parity"]

START_FOLDER = "start_model"
"""Subfolder of the output folder holding the shared start model (TRL's reference)."""


@dataclasses.dataclass(frozen=True)
class ParitySettings:
    """What ``seele bench parity`` adds to the training config.

    Attributes:
        seeds: Number of seeds (``seed``, ``seed + 1``, ...; ``seed`` from the config).
        steps: Training steps per side and seed (``None``: the config's ``steps``).
        eval_every: Evaluate every this many steps (0: before and after only).
        output_dir: Where ``parity.json``, ``parity.md``, ``parity.png`` and the start model go.
    """

    seeds: int = 3
    steps: int | None = None
    eval_every: int = 5
    output_dir: str = "runs/parity"

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds={self.seeds!r} must be an int >= 1.")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps={self.steps!r} must be an int >= 1 (or None: the config's).")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"eval_every={self.eval_every!r} must be an int >= 0.")


def check_config(config: Any) -> None:
    """Refuse settings under which the two sides would not train the same way."""
    cc, ac = config.curriculum, config.algo
    refusals = (
        (cc.name != "none", f"curriculum.name={cc.name!r}: TRL sees a hint as prompt text (no "
         "hint tokens, no imitation term); compare with curriculum.name=none"),
        (ac.name != "grpo", f"algo.name={ac.name!r}: TRL's GRPOTrainer is GRPO"),
        (ac.baseline != "pooled" and cc.num_rounds > 1, "algo.baseline=round with "
         "curriculum.num_rounds > 1: TRL has one advantage group per prompt; use pooled"),
        (ac.epochs != 1 or ac.minibatch_size not in (0, config.problems_per_step * cc.num_rounds
         * cc.group_size), "algo.epochs != 1 or a minibatch smaller than the batch: the "
         "comparison is one on-policy update per rollout batch"),
        (config.model.lora_rank > 0, "model.lora_rank > 0: the comparison is full fine-tuning"),
        (config.generation.backend != "transformers", "generation.backend must be transformers"),
    )  # fmt: skip
    for refused, why in refusals:
        if refused:
            raise ValueError(f"seele bench parity cannot compare {why}.")


# -- the benchmark -------------------------------------------------------------------------------


def run_parity(
    config: Any, settings: ParitySettings, *, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Warm up once, then train both sides for every seed; returns the result.

    Args:
        config: A :class:`~seele_agents.config.TrainConfig` (checked by :func:`check_config`).
        settings: Seeds, steps, evaluation period and output folder.
        echo: Where progress lines go.

    Returns:
        ``settings``, ``config``, ``start_accuracy`` and ``runs`` (one per seed: ``seed`` and
        per side ``curve`` ``[[step, accuracy], ...]``, ``reward`` per step, ``before``,
        ``after``, ``seconds``, ``parameter_change_max``), ``summary`` (per side mean and sd
        over seeds of ``before``, ``after`` and ``gain``; ``after_gap``: ours minus TRL, paired
        by seed) and ``versions``.
    """
    from transformers.utils import logging as hf_logging

    from seele_agents.config import config_to_dict
    from seele_agents.models import load_model, resolve_device
    from seele_agents.training.build import seed_everything
    from seele_agents.training.sft import warm_up

    check_config(config)
    steps = settings.steps or config.steps
    config = dataclasses.replace(config, steps=steps)
    out = Path(settings.output_dir)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # TRL's advice on a CPU run would fill the output
    try:
        seed_everything(config.seed)
        mc = config.model
        device = resolve_device(mc.device)
        start, tokenizer = load_model(mc.name, dtype=mc.dtype, device=str(device),
                                      revision=mc.revision, seed=config.seed)  # fmt: skip
        if config.sft.steps > 0:
            warm_up(config, start, tokenizer, out / "sft_model", fresh=True, echo=echo)
        start.save_pretrained(out / START_FOLDER)
        tokenizer.save_pretrained(out / START_FOLDER)
        start_accuracy = _Side.accuracy_of(config, start, tokenizer)
        echo(f"start model: held-out accuracy {start_accuracy:.3f} (greedy, no hint)")
        runs = []
        for seed in range(config.seed, config.seed + settings.seeds):
            seeded = dataclasses.replace(config, seed=seed)
            record: dict[str, Any] = {"seed": seed}
            seed_everything(seed)
            record["ours"] = _train_ours(seeded, copy.deepcopy(start), tokenizer, settings)
            seed_everything(seed)
            record["trl"] = _train_trl(seeded, copy.deepcopy(start), tokenizer, settings, out)
            runs.append(record)
            echo(f"seed {seed}: ours {record['ours']['before']:.3f} -> "
                 f"{record['ours']['after']:.3f}, TRL {record['trl']['before']:.3f} -> "
                 f"{record['trl']['after']:.3f}")  # fmt: skip
    finally:
        hf_logging.set_verbosity(verbosity)
    return {
        "settings": {**dataclasses.asdict(settings), "steps": steps},
        "config": config_to_dict(config),
        "start_accuracy": start_accuracy,
        "runs": runs,
        "summary": _summary(runs),
        "versions": _versions(),
    }


class _Side:
    """What both sides share: the env, the held-out problems and a greedy evaluation."""

    def __init__(self, config: Any, model: Any, tokenizer: Any) -> None:
        from seele_agents.generation import SamplingParams, TransformersGenerator
        from seele_agents.training.build import make_env, make_eval_env

        self.config, self.model = config, model
        gc, ec = config.generation, config.eval
        self.env = make_env(config, tokenizer)
        self.eval_env, self.eval_ids = make_eval_env(config, tokenizer, self.env.unwrapped)
        params = SamplingParams(gc.max_new_tokens, gc.temperature, gc.top_p, gc.top_k)
        self.generator = TransformersGenerator(
            model, tokenizer, params, batch_size=gc.batch_size, seed=config.seed
        )
        self.eval_params = SamplingParams(
            max_new_tokens=ec.max_new_tokens or gc.max_new_tokens, temperature=0
        )
        self.curve: list[list[float]] = []
        self.reward: list[float] = []
        self.start = [p.detach().clone() for p in model.parameters()]

    def evaluate(self, step: int) -> float:
        """Greedy held-out accuracy (no hint) now; appended to the curve at ``step``."""
        from seele_agents.training.rollout import evaluate

        was_training = self.model.training
        self.model.eval()
        accuracy = evaluate(self.eval_env, self.generator, self.eval_ids, self.eval_params)
        self.model.train(was_training)
        self.curve.append([step, accuracy["accuracy"]])
        return float(accuracy["accuracy"])

    def report(self, seconds: float) -> dict[str, Any]:
        change = max(
            float((p.detach() - q).abs().max())
            for p, q in zip(self.model.parameters(), self.start, strict=True)
        )
        return {"curve": self.curve, "reward": self.reward, "before": self.curve[0][1],
                "after": self.curve[-1][1], "seconds": seconds,
                "parameter_change_max": change}  # fmt: skip

    @classmethod
    def accuracy_of(cls, config: Any, model: Any, tokenizer: Any) -> float:
        return cls(config, model, tokenizer).evaluate(0)


def _optimizer(config: Any, params: Any) -> Any:
    """``optim.name``'s optimiser (AdamW unless the config says sgd), as TRL builds it."""
    import torch

    oc = config.optim
    if getattr(oc, "name", "adamw") == "sgd":
        momentum = float(getattr(oc, "momentum", 0.0))
        return torch.optim.SGD(params, lr=oc.lr, momentum=momentum, weight_decay=oc.weight_decay)
    return torch.optim.AdamW(params, lr=oc.lr, betas=tuple(oc.betas), eps=1e-8,
                             weight_decay=oc.weight_decay)  # fmt: skip


def _train_ours(
    config: Any, model: Any, tokenizer: Any, settings: ParitySettings
) -> dict[str, Any]:
    """``seele train``'s loop: collect_rollouts -> learner.step -> sync_weights."""
    import torch
    from tqdm.auto import tqdm

    from seele_agents.training.build import lr_factor, make_learner
    from seele_agents.training.rollout import collect_rollouts

    side = _Side(config, model, tokenizer)
    oc, cc = config.optim, config.curriculum
    optimizer = _optimizer(config, [p for p in model.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, oc.scheduler, oc.warmup_steps, config.steps)
    )
    learner = make_learner(config, model, optimizer, scheduler)  # reference: the start model
    side.evaluate(0)
    started = time.perf_counter()
    for step in tqdm(range(1, config.steps + 1), desc=f"seed {config.seed} ours", unit="step",
                     dynamic_ncols=True):  # fmt: skip
        batch = collect_rollouts(side.env, side.generator, num_problems=config.problems_per_step,
                                 num_rounds=cc.num_rounds, group_size=cc.group_size)  # fmt: skip
        learner.step(batch)
        side.generator.sync_weights()
        side.reward.append(batch.metrics["reward/mean"])
        if _evaluate_at(step, settings.eval_every, config.steps):
            side.evaluate(step)
    seconds = time.perf_counter() - started
    side.evaluate(config.steps)
    return side.report(seconds)


def _train_trl(
    config: Any, model: Any, tokenizer: Any, settings: ParitySettings, out: Path
) -> dict[str, Any]:
    """TRL's GRPOTrainer on the same env through SEELEForTRL, evaluated by a callback."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from seele_agents.integrations.trl import SEELEForTRL

    cc = config.curriculum
    group = cc.num_rounds * cc.group_size  # our pooled baseline: one group per problem
    trl_config = dataclasses.replace(
        config, curriculum=dataclasses.replace(cc, num_rounds=1, group_size=group)
    )
    side = _Side(trl_config, model, tokenizer)
    adapter = SEELEForTRL(side.env, interleave=1)  # one round: no round waits on another
    model.config._name_or_path = str(out / START_FOLDER)  # TRL loads its reference from there
    side.evaluate(0)
    bar = tqdm(total=config.steps, desc=f"seed {config.seed} TRL", unit="step", dynamic_ncols=True)

    class Track(TrainerCallback):
        """Training reward per step, and the held-out evaluation every ``eval_every`` steps."""

        def on_log(self, *_: Any, logs: dict[str, float] | None = None, **__: Any) -> None:
            if logs and "reward" in logs:
                side.reward.append(float(logs["reward"]))

        def on_step_end(self, _args: Any, state: Any, *__: Any, **___: Any) -> None:
            bar.update(1)
            if _evaluate_at(state.global_step, settings.eval_every, config.steps):
                side.evaluate(state.global_step)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seele-parity-") as folder:
        args = grpo_config(config, folder)
        trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                              reward_funcs=adapter.reward, train_dataset=adapter.dataset(args),
                              callbacks=[Track()])  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    adapter.finish()
    bar.close()
    seconds = time.perf_counter() - started
    side.evaluate(config.steps)
    return side.report(seconds)


def grpo_config(config: Any, output_dir: str) -> Any:
    """TRL's ``GRPOConfig`` for the training settings of ``config`` (a TrainConfig).

    Example:
        >>> from seele_agents.config import load_config
        >>> sizes = ["curriculum.num_rounds=2", "curriculum.group_size=4", "algo.loss=dr_grpo",
        ...          "algo.advantage=dr_grpo"]
        >>> args = grpo_config(load_config(None, sizes), "/tmp/x")
        >>> args.loss_type, args.scale_rewards, args.num_generations, args.use_bias_correction_kl
        ('dr_grpo', 'none', 8, False)
    """
    from trl import GRPOConfig

    from seele_agents.models import resolve_device

    cc, ac, gc, oc = config.curriculum, config.algo, config.generation, config.optim
    group = cc.num_rounds * cc.group_size
    sgd = getattr(oc, "name", "adamw") == "sgd"
    momentum = float(getattr(oc, "momentum", 0.0))
    schedule = {"constant": "constant_with_warmup" if oc.warmup_steps else "constant",
                "linear": "linear", "cosine": "cosine"}[oc.scheduler]  # fmt: skip
    return GRPOConfig(
        output_dir=output_dir, max_steps=config.steps, seed=config.seed,
        per_device_train_batch_size=config.problems_per_step * group,
        gradient_accumulation_steps=1, num_generations=group, num_iterations=1,
        shuffle_dataset=False, max_completion_length=gc.max_new_tokens,
        temperature=gc.temperature or 1.0, top_p=gc.top_p, top_k=gc.top_k,
        learning_rate=oc.lr, lr_scheduler_type=schedule, warmup_steps=oc.warmup_steps,
        weight_decay=oc.weight_decay, adam_beta1=oc.betas[0], adam_beta2=oc.betas[1],
        adam_epsilon=1e-8, optim="sgd" if sgd else "adamw_torch",
        optim_args=f"momentum={momentum}" if sgd and momentum else None,
        max_grad_norm=oc.max_grad_norm, loss_type=ac.loss,
        scale_rewards="group" if ac.advantage == "grpo" else "none", beta=ac.beta,
        epsilon=ac.epsilon_low, epsilon_high=ac.resolved_epsilon_high,
        use_bias_correction_kl=False, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=resolve_device(config.model.device).type == "cpu", bf16=False,
        disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip


def _evaluate_at(step: int, every: int, total: int) -> bool:
    """Evaluate along the way every ``every`` steps; the last step is evaluated after training."""
    return bool(every) and step % every == 0 and step < total


# -- summary, table and plot ---------------------------------------------------------------------


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for side in ("ours", "trl"):
        summary[side] = {key: _mean_sd([r[side][key] for r in runs]) for key in ("before", "after")}
        summary[side]["gain"] = _mean_sd([r[side]["after"] - r[side]["before"] for r in runs])
    summary["after_gap"] = _mean_sd([r["ours"]["after"] - r["trl"]["after"] for r in runs])
    return summary


def format_table(result: dict[str, Any]) -> str:
    """Markdown: held-out accuracy before -> after per seed and side, then mean ± sd.

    Example:
        >>> side = {"before": 0.2, "after": 0.4, "curve": [[0, 0.2], [4, 0.4]], "reward": []}
        >>> runs = [{"seed": 0, "ours": side, "trl": {**side, "after": 0.3}}]
        >>> table = format_table({"runs": runs, "summary": _summary(runs)})
        >>> print(table.splitlines()[2])
        | 0 | 0.200 -> 0.400 | +0.200 | 0.200 -> 0.300 | +0.100 |
    """
    lines = [
        "| seed | ours: before -> after | ours: gain | TRL: before -> after | TRL: gain |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        cells = [str(r["seed"])]
        for side in ("ours", "trl"):
            before, after = r[side]["before"], r[side]["after"]
            cells += [f"{before:.3f} -> {after:.3f}", f"{after - before:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    s = result["summary"]
    cells = ["mean ± sd"]
    for side in ("ours", "trl"):
        b, a, g = s[side]["before"], s[side]["after"], s[side]["gain"]
        cells += [f"{b['mean']:.3f} -> {a['mean']:.3f} ± {a['sd']:.3f}",
                  f"{g['mean']:+.3f} ± {g['sd']:.3f}"]  # fmt: skip
    lines.append("| " + " | ".join(cells) + " |")
    gap = s["after_gap"]
    lines += ["", f"after, ours - TRL (paired by seed): {gap['mean']:+.3f} ± {gap['sd']:.3f}"]
    return "\n".join(lines)


def plot_curves(result: dict[str, Any], path: str | Path) -> Path:
    """PNG of held-out accuracy against the training step: each seed thin, the mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for side, label, colour in (("ours", "ours (seele)", "tab:blue"), ("trl", "TRL", "tab:orange")):
        curves = [np.array(r[side]["curve"], dtype=float) for r in result["runs"]]
        for curve in curves:
            ax.plot(curve[:, 0], curve[:, 1], color=colour, alpha=0.3, linewidth=1)
        if len({len(c) for c in curves}) == 1:
            mean = np.mean([c[:, 1] for c in curves], axis=0)
            ax.plot(curves[0][:, 0], mean, color=colour, linewidth=2.5, marker="o",
                    markersize=4, label=f"{label}, mean of {len(curves)} seeds")  # fmt: skip
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out accuracy (greedy, no hint)")
    ax.set_title("GRPO: ours vs TRL's GRPOTrainer, same start", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def _versions() -> dict[str, str]:
    import platform

    import torch
    import transformers
    import trl

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__}  # fmt: skip


# -- command line --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``seele bench parity``."""
    defaults = ParitySettings()
    parser.add_argument("--config", help="a YAML config file (defaults: the `seele train` demo)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a config field, as for `seele train` (repeatable); curriculum.name "
        "defaults to none",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=defaults.seeds,
                        help=f"seeds: seed, seed + 1, ... ({defaults.seeds})")  # fmt: skip
    parser.add_argument("--steps", type=int, help="training steps per side (default: `steps`)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every,
                        help=f"held-out evaluation every k steps; 0: before and after only "
                        f"({defaults.eval_every})")  # fmt: skip
    parser.add_argument("--output-dir", default=defaults.output_dir,
                        help=f"where the results go ({defaults.output_dir})")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the full result to this JSON file")


def run(args: argparse.Namespace) -> int:
    """``seele bench parity``: train both sides, write JSON, markdown and PNG, print the table."""
    from seele_agents.bench.speed import trl_installed
    from seele_agents.config import ConfigError, load_config

    try:
        settings = ParitySettings(seeds=args.seeds, steps=args.steps, eval_every=args.eval_every,
                                  output_dir=args.output_dir)  # fmt: skip
        config = load_config(args.config, ["curriculum.name=none", *args.overrides])
        check_config(config)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"seele bench parity: error: {error}", file=sys.stderr)
        return 2
    if not trl_installed("seele bench parity"):
        return 2
    result = run_parity(config, settings)
    out = Path(settings.output_dir)
    table = format_table(result)
    text = json.dumps(result, indent=2) + "\n"
    write_atomic(out / "parity.json", text)
    write_atomic(out / "parity.md", _markdown(result, table))
    plot_curves(result, out / "parity.png")
    if args.json is not None:
        write_atomic(args.json, text)
    print(table)
    print(f"results: {out / 'parity.json'}, {out / 'parity.md'}, {out / 'parity.png'}")
    return 0


def _markdown(result: dict[str, Any], table: str) -> str:
    c, s = result["config"], result["settings"]
    cc, ac, oc = c["curriculum"], c["algo"], c["optim"]
    settings = (
        f"model {c['model']['name']}, {c['sft']['steps']} warm-up steps; {s['steps']} steps x "
        f"{c['problems_per_step']} problems x {cc['num_rounds'] * cc['group_size']} completions; "
        f"curriculum {cc['name']}; advantage {ac['advantage']}, loss {ac['loss']}, beta "
        f"{ac['beta']}; optimiser {oc.get('name', 'adamw')} lr {oc['lr']}; "
        f"{len(result['runs'])} seed(s); held-out: {c['eval']['num_problems']} problems, greedy"
    )
    return (
        "# seele bench parity: our GRPO vs TRL's GRPOTrainer\n\n"
        f"{settings}.\n\nStart model accuracy: {result['start_accuracy']:.3f}.\n\n{table}\n"
    )
