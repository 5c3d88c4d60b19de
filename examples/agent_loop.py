"""A complete agent loop against the env, batched through a Gymnasium vector env.

Replace ``generate`` with your model (a transformers pipeline, vLLM, an API): it takes a batch
of prompts and returns one completion per prompt. Nothing else needs to change.

    python examples/agent_loop.py --num-envs 4 --steps 25 --hint-rate 0.5
    python examples/agent_loop.py --dataset gsm8k --data-path ../shared/data/gsm8k --split test
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from seele_env import make_vec


def generate(prompts: tuple[str, ...]) -> tuple[str, ...]:
    """Stand-in model: box the last number of each prompt. Swap in a real generator."""
    completions = []
    for prompt in prompts:
        numbers = re.findall(r"-?\d+", prompt[-2000:])
        completions.append(f"\\boxed{{{numbers[-1]}}}" if numbers else "")
    return tuple(completions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="procedural")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--split", default=None)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25, help="batches of episodes")
    parser.add_argument("--hint-rate", type=float, default=0.5)
    args = parser.parse_args()

    env_kwargs: dict[str, object] = {"dataset": args.dataset, "split": args.split}
    if args.data_path:
        env_kwargs["data_path"] = args.data_path
    # make_vec sets what text episodes need in an AsyncVectorEnv (see docs/env.md).
    envs = make_vec(args.num_envs, vectorization_mode="async", **env_kwargs)
    options = {"hint_rate": args.hint_rate}
    rewards, hint_rates = [], []
    envs.reset(seed=0)
    for _ in range(args.steps):
        prompts, infos = envs.reset(options=options)  # one-step episodes: reset every time
        _, reward, terminated, _, infos = envs.step(generate(prompts))
        assert terminated.all()
        rewards.extend(reward.tolist())
        hint_rates.extend(infos["hint_rate"].tolist())
    envs.close()
    print(
        f"{len(rewards)} episodes on {args.dataset!r}: mean reward {np.mean(rewards):.3f}, "
        f"mean realised hint rate {np.mean(hint_rates):.3f}"
    )


if __name__ == "__main__":
    main()
