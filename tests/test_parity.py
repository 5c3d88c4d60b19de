"""``seele bench parity``: a very short run through the command, its outputs and its refusals."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install -e '.[trl]')")
torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents import cli  # noqa: E402
from seele_agents.bench.parity import check_config, format_table, grpo_config  # noqa: E402
from seele_agents.config import TrainConfig, load_config  # noqa: E402

# ~20 s on one core: 1 seed, 2 steps of 2 problems x 4 completions per side, 8 held-out problems.
SMALL = [
    "--set", "problems_per_step=2", "--set", "curriculum.num_rounds=2",
    "--set", "curriculum.group_size=2", "--set", "eval.num_problems=8", "--set", "sft.steps=5",
    "--set", "generation.max_new_tokens=16", "--set", "env.num_problems=16",
    "--set", "optim.lr=1e-3",
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    argv = ["bench", "parity", "--seeds", "1", "--steps", "2", "--eval-every", "1",
            "--output-dir", str(out), "--json", str(out / "copy.json"), *SMALL]  # fmt: skip
    assert cli.main(argv) == 0
    return out


def test_writes_json_markdown_and_plot(outputs):
    result = json.loads((outputs / "parity.json").read_text())
    assert json.loads((outputs / "copy.json").read_text()) == result
    assert result["settings"]["steps"] == 2 and len(result["runs"]) == 1
    assert result["config"]["curriculum"]["name"] == "none"  # the default of the comparison
    run = result["runs"][0]
    for side in ("ours", "trl"):
        record = run[side]
        assert [step for step, _ in record["curve"]] == [0, 1, 2]
        assert all(0 <= accuracy <= 1 for _, accuracy in record["curve"])
        assert record["before"] == result["start_accuracy"]  # one start, greedy evaluation
        assert len(record["reward"]) == 2
        # 5 warm-up steps teach no answer: every reward is 0, so no advantage moves a weight.
        assert record["parameter_change_max"] >= 0
    assert (outputs / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (outputs / "parity.md").read_text()
    assert format_table(result) in markdown and "mean ± sd" in markdown
    assert (outputs / "start_model" / "config.json").exists()  # TRL's reference model


def test_grpo_config_follows_the_train_config():
    config = load_config(None, ["algo.loss=dapo", "algo.advantage=grpo", "optim.lr=0.5"])
    args = grpo_config(config, "unused")
    group = config.curriculum.num_rounds * config.curriculum.group_size
    assert (args.loss_type, args.scale_rewards, args.learning_rate) == ("dapo", "group", 0.5)
    assert args.num_generations == group
    assert args.per_device_train_batch_size == config.problems_per_step * group
    assert (args.epsilon, args.epsilon_high) == (0.2, 0.28)
    assert args.beta == config.algo.beta and not args.use_bias_correction_kl
    assert args.max_completion_length == config.generation.max_new_tokens


@pytest.mark.parametrize(
    ("override", "named"),
    [("curriculum.name=seele", "curriculum.name"), ("algo.name=ppo", "algo.name"),
     ("algo.epochs=2", "algo.epochs"), ("model.lora_rank=4", "lora_rank")],
)  # fmt: skip
def test_settings_that_cannot_be_compared_are_refused(override, named):
    with pytest.raises(ValueError, match=named):
        check_config(load_config(None, ["curriculum.name=none", override]))
    check_config(load_config(None, ["curriculum.name=none"]))
    assert isinstance(load_config(None, []), TrainConfig)


def test_the_command_names_a_bad_override(capsys):
    assert cli.main(["bench", "parity", "--set", "curriculum.name=seele"]) == 2
    assert "curriculum.name" in capsys.readouterr().err
