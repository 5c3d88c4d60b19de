"""Helpers of examples/gpu/run.sh: build the larger tiny Llama, print partial bench tables and
per-round accuracies.

    python examples/gpu/tools.py build-model --out runs/gpu/model --hidden 256 --layers 6
    python examples/gpu/tools.py partial-table -- <the seele bench curricula options>
    python examples/gpu/tools.py rounds runs/gpu/smollm2-train/metrics.jsonl

``build-model`` exists because ``model.name: tiny`` always builds the CPU demo's shape
(:class:`seele_agents.models.tiny.TinyConfig` defaults): it builds the same tokenizer and a wider,
deeper Llama with :func:`seele_agents.models.tiny.build_tiny` and saves both with
``save_pretrained``, so any ``seele`` command loads it as ``model.name=<folder>``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def build_model(args: argparse.Namespace) -> int:
    """Build a tiny-family Llama of the given shape and save it to ``args.out``."""
    from seele_agents.models.tiny import TinyConfig, build_tiny

    config = TinyConfig(
        hidden_size=args.hidden,
        intermediate_size=args.intermediate or 3 * args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
    )
    model, tokenizer = build_tiny(seed=args.seed, config=config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: tiny-family Llama, {params:,} parameters (width {config.hidden_size}, "
        f"{config.num_layers} layers, {config.num_heads} heads, feed-forward "
        f"{config.intermediate_size}, vocabulary {len(tokenizer)}) -> {out}"
    )
    return 0


def partial_table(args: argparse.Namespace) -> int:
    """The bench's table over the runs that finished (an interrupted benchmark)."""
    from seele_agents.bench import curricula as bench

    parser = argparse.ArgumentParser(prog="seele bench curricula")
    bench.add_arguments(parser)
    spec = bench.spec_from_args(parser.parse_args(args.bench_args))
    results = bench.collect(spec)
    done = {k: c for k, c in results["curricula"].items() if c["runs"]}
    total = len(spec.curricula) * len(spec.seeds)
    finished = sum(len(c["runs"]) for c in done.values())
    print(f"partial results: {finished} of {total} runs finished")
    if not done:
        return 1
    results["curricula"] = done
    print(bench.format_table(results))
    return 0


def rounds(args: argparse.Namespace) -> int:
    """Per step: reward, hint rate and the accuracy of each sampling round."""
    path = Path(args.metrics)
    if not path.is_file():
        print(f"no metrics: {path} does not exist (the run did not start?)")
        return 1
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in records if "reward/accuracy" in r]
    if not rows:
        print(f"no training steps in {args.metrics}")
        return 1
    keys = sorted(
        (k for k in rows[0] if k.startswith("curriculum/accuracy_round")),
        key=lambda k: int(k.rsplit("round", 1)[1]),
    )
    head = " ".join(f"{'round' + k.rsplit('round', 1)[1]:>8}" for k in keys)
    print(f" step reward   hint {head}")

    def cell(value: object) -> str:
        return "   nan" if value is None or math.isnan(float(value)) else f"{float(value):6.3f}"

    for r in rows:
        cells = " ".join(f"{cell(r.get(k)):>8}" for k in keys)
        print(
            f"{r['step']:5d} {cell(r['reward/accuracy'])} "
            f"{cell(r.get('curriculum/hint_rate'))} {cells}"
        )
    evals = [r for r in records if "eval/accuracy" in r]
    if evals:
        first, last = evals[0], evals[-1]
        print(
            f"held-out greedy accuracy (no hint): {first['eval/accuracy']:.3f} at step "
            f"{first['step']} -> {last['eval/accuracy']:.3f} at step {last['step']}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build-model", help="build and save a tiny-family Llama of a given shape")
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=0, help="default 3 x hidden")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=build_model)
    p = sub.add_parser("partial-table", help="table of the finished runs of a bench")
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=partial_table)
    p = sub.add_parser("rounds", help="per-round accuracies from a run's metrics.jsonl")
    p.add_argument("metrics")
    p.set_defaults(run=rounds)
    args = parser.parse_args(argv)
    if getattr(args, "bench_args", None) and args.bench_args[0] == "--":
        args.bench_args = args.bench_args[1:]
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
