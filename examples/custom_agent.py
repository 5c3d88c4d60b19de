"""An outside agent on the SEELE env: only ``gym.make``, ``reset`` and ``step``, any text generator.

Each episode is one step: ``reset()`` returns the observation (the prompt, ending with the hint
when ``placement="response"``), the generator continues it, ``step(completion)`` returns the
0/1 reward and ``info``. Without options, ``reset()`` lets SEELE choose the problem and its hint
rate (one problem for ``num_rounds * group_size`` episodes), and every ``step()`` feeds the
outcome back to it, so the curriculum runs without the agent calling it. Swap
:func:`make_generator` for vLLM or an API client: a function ``str -> str`` is all it takes.

    python examples/custom_agent.py --model tiny --episodes 16 --group-size 4 --num-rounds 2
    python examples/custom_agent.py --model Qwen/Qwen2.5-0.5B --episodes 64 --max-new-tokens 512
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gymnasium as gym

import seele_env  # noqa: F401  (registers "seele/SEELE-v0")

Generate = Callable[[str], str]  # any text generator: observation in, only the new text out


def make_generator(model: str, max_new_tokens: int) -> Generate:
    """A transformers pipeline over a hub id, a local folder or ``"tiny"`` (untrained, offline)."""
    from transformers import pipeline  # the env itself needs neither torch nor transformers

    lm: Any = model
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens}
    if model == "tiny":
        from seele_agents.models.tiny import build_tiny

        lm, kwargs["tokenizer"] = build_tiny(seed=0)
    pipe = pipeline("text-generation", lm, **kwargs)

    def generate(observation: str) -> str:
        # Only the new text goes back: with placement="response" the env verifies
        # info["hint_text"] + completion, so a repeated hint would be there twice.
        out = pipe(observation, return_full_text=False, clean_up_tokenization_spaces=False)
        return out[0]["generated_text"]

    return generate


def run(env: gym.Env[str, str], generate: Generate, episodes: int, group_size: int) -> list[dict]:
    """Play ``episodes`` episodes, one printed line each; return each step's info and reward."""
    records: list[dict[str, Any]] = []
    for episode in range(1, episodes + 1):
        # No options: SEELE picks the problem and its hint rate (a pinned rate is not recorded).
        observation, info = env.reset()  # "response": info["prompt"] + info["hint_text"]
        completion = generate(observation)
        _, reward, _, _, info = env.step(completion)  # SEELE records info["correct"] here
        records.append({**info, "completion": completion, "reward": float(reward)})
        if episode % group_size == 0:  # a round closed: n rollouts of one problem at one rate
            # A learner's update goes here, on records[-group_size:]; e.g. GRPO: advantage =
            # reward - group mean, loss on the completion's tokens only (not the hint's).
            pass
        accuracy = sum(r["correct"] for r in records) / episode
        mean_rate = sum(r["hint_rate"] for r in records) / episode
        print(f"episode {episode} | {info['problem_id']} | round {info['curriculum/round']} | "
              f"hint {info['hint_len']}/{info['n_units']} rate {info['hint_rate']:.3f} | reward "
              f"{float(reward):g} | correct {info['correct']} | accuracy {accuracy:.3f} | "
              f"mean hint rate {mean_rate:.3f}")  # fmt: skip
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="hub id, local folder or 'tiny'")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--group-size", type=int, default=8, help="n, rollouts per round")
    parser.add_argument("--num-rounds", type=int, default=4, help="m, rounds per visit")
    parser.add_argument("--dataset", default="procedural", help="procedural, gsm8k, math, ...")
    parser.add_argument("--data-path", default=None, help="local dataset (else the hub)")
    parser.add_argument("--placement", default="response", choices=("response", "prompt"))
    parser.add_argument("--seed", type=int, default=0, help="seeds SEELE's problem sampling")
    args = parser.parse_args()
    env = gym.make(
        "seele/SEELE-v0", dataset=args.dataset, data_path=args.data_path, seed=args.seed,
        placement=args.placement, group_size=args.group_size, num_rounds=args.num_rounds,
    )  # fmt: skip
    generate = make_generator(args.model, args.max_new_tokens)
    records = run(env, generate, args.episodes, args.group_size)
    env.close()
    mean_reward = sum(r["reward"] for r in records) / len(records)
    print(f"{len(records)} episodes: mean reward {mean_reward:.3f}")


if __name__ == "__main__":
    main()
