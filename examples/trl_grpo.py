"""TRL's GRPOTrainer on the SEELE env: the tiny model, procedural arithmetic, CPU, no downloads.

The env and its SEELE curriculum reach TRL through
:class:`seele_agents.integrations.trl.SEELEForTRL`: a dataset of curriculum-chosen hinted prompts
and a reward function that verifies completions with the env and feeds the outcomes back to the
curriculum. A short supervised warm-up first teaches the freshly built model the solution format,
so that some rewards are not zero.

    python examples/trl_grpo.py --steps 8 --output-dir /tmp/trl_grpo

Each optimizer step prints TRL's mean reward, the verifier's accuracy, and the mean hint rate
and round of the step's prompts; at the end, the rates SEELE stored for the problems it saw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

import seele_env  # noqa: F401  (registers the environments)
from seele_agents.integrations.trl import SEELEForTRL
from seele_agents.models.tiny import build_tiny
from seele_agents.training.sft import sft_examples, sft_warmup
from seele_env.procedural import generate_problems


class PrintSteps(TrainerCallback):
    """Prints one line per logged optimizer step."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "reward" in logs:
            print(
                f"step {state.global_step:3d} | reward {logs['reward']:.3f} | "
                f"accuracy {logs.get('reward/accuracy', float('nan')):.3f} | "
                f"hint rate {logs.get('curriculum/hint_rate', float('nan')):.3f} | "
                f"round {logs.get('curriculum/round', float('nan')):.1f} | "
                f"curriculum step {int(logs.get('curriculum/step', 0))}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="TRL optimizer steps")
    parser.add_argument("--output-dir", type=Path, default=Path("trl_grpo_output"))
    parser.add_argument("--num-rounds", type=int, default=2, help="SEELE's m")
    parser.add_argument("--group-size", type=int, default=4, help="SEELE's n = num_generations")
    parser.add_argument("--prompts-per-step", type=int, default=4, help="problems per batch")
    parser.add_argument(
        "--num-problems", type=int, default=16, help="problem set size (small: problems recur)"
    )
    parser.add_argument("--interleave", type=int, default=2)
    parser.add_argument(
        "--hint-unit",
        default="tokens",
        choices=["tokens", "steps", "sentences"],
        help="units of the hint (procedural arithmetic has 2 steps: step rates are 0, 0.5, 1)",
    )
    parser.add_argument("--sft-steps", type=int, default=150, help="0 skips the warm-up")
    parser.add_argument("--max-completion-length", type=int, default=40)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, tokenizer = build_tiny(seed=args.seed)
    env = gym.make(
        "seele/SEELE-v0",
        dataset="procedural",
        difficulty=1,
        families=["arithmetic"],
        num_problems=args.num_problems,
        template="plain",  # the format the warm-up teaches
        hint_unit=args.hint_unit,
        tokenizer=tokenizer,  # token units count the model's tokens
        num_rounds=args.num_rounds,
        group_size=args.group_size,
        seed=args.seed,
    )
    adapter = SEELEForTRL(env, interleave=args.interleave)
    if args.sft_steps > 0:
        # Problems from another procedural seed than the env's: the warm-up does not see them.
        problems = generate_problems(512, seed=1, difficulty=1, families=["arithmetic"])
        metrics = sft_warmup(
            model, tokenizer, sft_examples(problems), steps=args.sft_steps, batch_size=32, lr=5e-3
        )
        print(
            f"warm-up: {args.sft_steps} steps, loss {metrics['sft/loss_first']:.2f} -> "
            f"{metrics['sft/loss_last']:.2f} in {metrics['sft/seconds']:.1f} s"
        )

    config = GRPOConfig(
        output_dir=str(args.output_dir),
        max_steps=args.steps,
        num_generations=args.group_size,
        per_device_train_batch_size=args.prompts_per_step * args.group_size,
        shuffle_dataset=False,  # required: the adapter's rows are drawn lazily, in order
        max_completion_length=args.max_completion_length,
        temperature=1.0,
        learning_rate=args.learning_rate,
        loss_type="dr_grpo",  # SEELE's Dr.GRPO: no length or std normalisation
        scale_rewards="none",
        beta=0.001,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
        seed=args.seed,
    )
    # TRL builds its frozen reference model (for the KL term, beta > 0) from the model's path,
    # so the warmed-up model goes through a folder.
    start = args.output_dir / "start_model"
    model.save_pretrained(start)
    tokenizer.save_pretrained(start)
    trainer = GRPOTrainer(
        model=str(start),
        processing_class=tokenizer,
        args=config,
        reward_funcs=adapter.reward,
        train_dataset=adapter.dataset(config),
        callbacks=[PrintSteps()],
    )
    trainer.remove_callback(PrinterCallback)  # PrintSteps prints a shorter line per step
    trainer.train()
    adapter.finish()

    curriculum = adapter.curriculum
    print(
        f"curriculum: {curriculum.step_count} steps ended (the last by adapter.finish()), "
        f"{adapter.outcomes_recorded} outcomes recorded, {adapter.rows_drawn} rounds drawn"
    )
    stored = getattr(curriculum, "stored_rate", None)
    if callable(stored):
        rates = {pid: stored(pid) for pid in env.unwrapped.problem_ids}
        rates = {pid: rate for pid, rate in rates.items() if rate is not None}
        for pid, rate in list(rates.items())[:8]:
            print(f"stored hint rate {rate:.3f} | {pid}")
        print(f"{len(rates)} problems have a stored rate")

    trainer.save_model(str(args.output_dir))
    state_path = args.output_dir / "curriculum_state.json"
    state_path.write_text(json.dumps(curriculum.state_dict()))
    print(f"model and curriculum state saved to {args.output_dir}")


if __name__ == "__main__":
    main()
