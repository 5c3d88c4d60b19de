"""The ``seele`` command.

    seele train                                   # the embedded CPU demo (no downloads)
    seele train --config examples/configs/smollm2_gsm8k.yaml --set algo.beta=0.01
    seele train --model smollm2 --set steps=4      # any hub id or local folder works too
    seele train --algo ppo                         # or reinforcepp; grpo is the default
    seele train --output-dir runs/x --resume latest

``--set key=value`` overrides one config field (YAML syntax for the value: ``--set
env.difficulty=[2,3]``); docs/training.md lists every field.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seele`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    from seele_agents.config import ConfigError, load_config
    from seele_agents.train import RunExistsError, train

    overrides = list(args.overrides)
    for key, value in (("model.name", args.model), ("algo.name", args.algo),
                       ("output_dir", args.output_dir), ("seed", args.seed)):  # fmt: skip
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")  # quoted: a YAML string as given
    try:
        config = load_config(args.config, overrides)
        train(config, resume=args.resume, overwrite=args.overwrite)
    except (ConfigError, RunExistsError, FileNotFoundError) as error:
        print(f"seele train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
