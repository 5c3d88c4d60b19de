"""The ``seele`` command.

    seele train                                   # the embedded CPU demo (no downloads)
    seele train --config examples/configs/smollm2_gsm8k.yaml --set algo.beta=0.01
    seele train --model smollm2 --set steps=4      # any hub id or local folder works too
    seele train --algo ppo                         # or reinforcepp; grpo is the default
    seele train --output-dir runs/x --resume latest
    seele eval --model runs/seele --dataset math500 --samples 8   # its latest checkpoint
    seele eval --model tiny --dataset procedural --hint-rates 0,0.25,0.5,0.75,1
    seele bench                                   # curricula at a matched budget, CPU preset
    seele bench speed                             # our GRPO step against TRL's GRPOTrainer
    seele bench scaling                           # step phases as m, n, batch, length grow
    seele bench parity --seeds 3                  # our GRPO and TRL's trained from one start
    seele export train.parquet --dataset gsm8k --data-path data/gsm8k --hint-rate 0.5  # for verl

``--set key=value`` overrides one config field (YAML syntax for the value: ``--set
env.difficulty=[2,3]``); docs/training.md lists every field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

BENCH_SUITES = ("curricula", "speed", "scaling", "parity", "-h", "--help")
"""What may follow ``seele bench``; anything else means the curricula suite."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seele", description="SEELE: RL with adaptive hints.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a model with GRPO, PPO or REINFORCE++ and a hint curriculum",
        description="Train with GRPO (or PPO, REINFORCE++) and a hint curriculum. With no "
        "arguments: the embedded "
        "CPU demo (tiny Llama, procedural problems, SEELE), about 10 minutes on 2 cores.",
    )
    train.add_argument("--config", help="a YAML config file (defaults: the CPU demo)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a config field, e.g. --set algo.beta=0.01 (repeatable)",
    )  # fmt: skip
    train.add_argument("--model", help="hub id, local folder, 'smollm2' or 'tiny' (model.name)")
    train.add_argument("--algo", help="grpo (default), ppo or reinforcepp (algo.name)")
    train.add_argument("--output-dir", help="where checkpoints, metrics and plots go")
    train.add_argument("--seed", type=int, help="random seed (seed)")
    train.add_argument(
        "--resume", metavar="CHECKPOINT",
        help="a checkpoint folder, 'latest' (error if none) or 'auto' (latest if any)",
    )  # fmt: skip
    train.add_argument(
        "--overwrite", action="store_true", help="start afresh in an output dir with a run"
    )
    from seele_agents.bench import curricula as bench
    from seele_agents.bench import parity, scaling, speed
    from seele_agents.evaluation import command as eval_command

    eval_command.add_arguments(
        commands.add_parser(
            "eval",
            help="pass@1, avg@k and pass@k of a model on math sets, optionally with hints",
            description=eval_command.__doc__.split("\n\n")[0],
        )
    )
    bench_parser = commands.add_parser(
        "bench",
        help="compare curricula at a matched rollout budget, or time a step against TRL",
        description="Benchmarks. 'seele bench [options]' is 'seele bench curricula [options]'.",
    )
    suites = bench_parser.add_subparsers(dest="suite", required=True)
    bench.add_arguments(
        suites.add_parser(
            "curricula",
            help="train with each curriculum at a matched budget; held-out accuracy",
            description=bench.__doc__.split("\n\n")[0],
        )
    )
    speed.add_arguments(
        suites.add_parser(
            "speed",
            help="time our GRPO step and TRL's GRPOTrainer side by side",
            description=speed.__doc__.split("\n\n")[0],
        )
    )
    scaling.add_arguments(
        suites.add_parser(
            "scaling",
            help="how our step's phases grow with m, n, batch size and length; SEELE vs GRPO",
            description=scaling.__doc__.split("\n\n")[0],
        )
    )
    parity.add_arguments(
        suites.add_parser(
            "parity",
            help="train our GRPO and TRL's GRPOTrainer from one start; held-out accuracy curves",
            description=parity.__doc__.split("\n\n")[0],
        )
    )
    from seele_env import export

    export.add_arguments(
        commands.add_parser(
            "export",
            help="write a problem set with hint units and hints for verl or TRL",
            description=export.__doc__.split("\n\n")[0],
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seele`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"] and (len(argv) == 1 or argv[1] not in BENCH_SUITES):
        argv.insert(1, "curricula")  # `seele bench [options]` is the curricula suite
    args = _parser().parse_args(argv)
    if args.command == "eval":
        from seele_agents.evaluation import command as eval_command

        return eval_command.run(args)
    if args.command == "export":
        from seele_env import export

        return export.run(args)
    if args.command == "bench":
        from seele_agents.bench import curricula as bench
        from seele_agents.bench import parity, scaling, speed

        suites = {"curricula": bench.run, "speed": speed.run, "scaling": scaling.run,
                  "parity": parity.run}  # fmt: skip
        return suites[args.suite](args)
    from seele_agents.config import ConfigError, load_config
    from seele_agents.training.checkpoint import CheckpointError, RunExistsError

    overrides = list(args.overrides)
    for key, value in (("model.name", args.model), ("algo.name", args.algo),
                       ("output_dir", args.output_dir), ("seed", args.seed)):  # fmt: skip
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")  # quoted: a YAML string as given
    try:
        config = load_config(args.config, overrides)
        _check_before_loading(config, args.resume, args.overwrite)
        from seele_agents.training.loop import (
            train,  # torch takes seconds: imported after the checks
        )

        train(config, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, CheckpointError, RunExistsError, FileNotFoundError) as error:
        print(f"seele train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # SIGINT: 130; SIGTERM: 143, as the shell reports them
        return 128 + getattr(stop, "signum", 2)
    return 0


def _check_before_loading(config: Any, resume: str | None, overwrite: bool) -> None:
    """What can be checked without torch, in well under a second: the data sources, that
    ``--resume`` names a checkpoint (every file of it is read once torch is imported), and that
    a fresh run does not write into an earlier run's folder."""
    from seele_agents.config import check_data_sources
    from seele_agents.training.checkpoint import refuse_to_mix, resolve_resume

    check_data_sources(config)
    if resume is not None:
        resolve_resume(resume, config.output_dir, verify=False)
    else:
        refuse_to_mix(config.output_dir, overwrite)


if __name__ == "__main__":
    sys.exit(main())
