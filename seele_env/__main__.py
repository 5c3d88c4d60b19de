"""``python -m seele_env``: run episodes of the environment and print accuracy by hint rate.

The agent here is deliberately naive and needs no model: it boxes the last number it can see
in its observation. Without a hint that is a number from the question, right only by luck; with
a partial hint it is an intermediate result, usually wrong; at hint rate 1 the observation holds
the whole worked solution and its answer, so it is right. A language model's accuracy instead
rises smoothly with the hint rate; that curve is what SEELE's controller fits. Swap in a real
model by replacing :func:`last_number_agent` with anything that maps text to text.

Example:
    python -m seele_env --episodes 100 --rates 0,0.5,1
    python -m seele_env --dataset gsm8k --data-path ../shared/data/gsm8k --split test
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence

import gymnasium as gym

import seele_env  # noqa: F401  (registers the environments)

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number_agent(observation: str) -> str:
    """A model-free agent: box the last number in the observation (bounded regex, no eval)."""
    numbers = _NUMBER.findall(observation[-2000:])
    return f"\\boxed{{{numbers[-1]}}}" if numbers else "I do not know."


def run_episodes(
    env: gym.Env[str, str],
    agent: Callable[[str], str],
    hint_rates: Sequence[float],
    episodes: int,
    seed: int,
) -> list[tuple[float, float, float]]:
    """Run ``episodes`` one-step episodes per hint rate; return (rate, mean realised rate, acc)."""
    rows = []
    for rate in hint_rates:
        env.reset(seed=seed)  # same problem sequence for every rate
        correct, realised = 0.0, 0.0
        for _ in range(episodes):
            observation, info = env.reset(options={"hint_rate": rate})
            _, _, terminated, _, info = env.step(agent(observation))
            assert terminated  # one-step episodes
            correct += float(info["correct"])
            realised += info["hint_rate"]
        rows.append((rate, realised / episodes, correct / episodes))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seele_env", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="procedural", help="procedural (default), gsm8k, ...")
    parser.add_argument("--data-path", default=None, help="local file or folder of the dataset")
    parser.add_argument("--split", default=None, help="default: the dataset's own")
    parser.add_argument("--episodes", type=int, default=200, help="episodes per hint rate")
    parser.add_argument("--rates", default="0,0.25,0.5,0.75,1", help="comma-separated hint rates")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]

    kwargs = {"dataset": args.dataset, "split": args.split}
    if args.data_path:
        kwargs["data_path"] = args.data_path
    env = gym.make("seele/MathHint-v0", **kwargs)
    observation, info = env.reset(seed=args.seed, options={"hint_rate": 0.5})
    print(f"{len(env.unwrapped.problems)} problems from {args.dataset!r}. One episode:\n")
    print(observation + "<model continues here>")
    completion = last_number_agent(observation)
    _, reward, _, _, info = env.step(completion)
    print(f"\ncompletion: {completion!r}  reward: {reward}  correct: {info['correct']}\n")

    start = time.perf_counter()
    rows = run_episodes(env, last_number_agent, rates, args.episodes, args.seed)
    elapsed = time.perf_counter() - start
    print("hint rate | realised | accuracy of the last-number agent")
    for rate, realised, accuracy in rows:
        print(f"{rate:9.2f} | {realised:8.3f} | {accuracy:.3f}")
    n = args.episodes * len(rates)
    print(
        f"\n{n} episodes in {elapsed:.1f} s ({n / elapsed:.0f} episodes/s, verification included)"
    )
    env.close()


if __name__ == "__main__":
    main()
