"""``seele bench speed``: both sides do the same work and really train; the report adds up."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install -e '.[trl]')")
torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.bench import speed  # noqa: E402
from seele_agents.cli import main  # noqa: E402

# A short warm-up, so that some groups have mixed rewards (an untrained model is never right).
SMALL = speed.SpeedConfig(steps=2, prompts=3, group_size=4, rounds=4, max_new_tokens=16,
                          num_problems=48, sft_steps=100)  # fmt: skip


@pytest.fixture(scope="module")
def result():
    return speed.run_speed(SMALL, echo=lambda *_: None)


def test_both_sides_do_the_same_work_and_train(result):
    ours, trl = result["ours"], result["trl"]
    for side in (ours, trl):
        assert len(side["step_s"]) == SMALL.steps  # the warm-up step is not timed
        assert side["completions_per_step"] == SMALL.completions_per_step == 48
        # A step with a nonzero gradient moves the weights; with all-equal rewards in every
        # group the gradient is 0 and nothing may move (no weight decay).
        assert side["parameters_changed"] == (side["nonzero_grad_steps"] > 0)
        # Fixed-length mode: EOS held back on both sides, so the tokens per step match exactly.
        assert side["completion_tokens_mean"] == SMALL.max_new_tokens
        assert side["min_s"] <= side["median_s"] <= side["max_s"]
    # Same prompts (the same env, template and curriculum): prompt + hint lengths agree closely.
    assert ours["prompt_tokens_mean"] == pytest.approx(trl["prompt_tokens_mean"], rel=0.35)
    assert ours["parameters_changed"] or trl["parameters_changed"]
    assert result["tokens_match"] and result["completion_tokens_gap"] == 0.0
    assert result["ratio"] == pytest.approx(ours["median_s"] / trl["median_s"])
    assert result["machine"]["trl"] and result["config"]["steps"] == SMALL.steps


def test_phase_breakdown_adds_up_to_the_step(result):
    for name, side in (("ours", result["ours"]), ("trl", result["trl"])):
        phases = side["phases_s"]
        assert sum(phases.values()) == pytest.approx(side["mean_s"]), name
        assert phases["generation"] > 0, name
        assert phases["other"] >= -1e-9, name  # the timed phases never exceed the step
        assert sum(side["phases_share"].values()) == pytest.approx(1.0)
    assert set(result["ours"]["phases_s"]) == {*speed.OUR_PHASES, "other"}
    share = result["curriculum_share"]
    assert 0 < share["mean"] <= share["max"] < 1


def test_report_names_the_ratio_and_phases(result):
    text = speed.format_report(result)
    assert f"{result['ratio']:.3f} by medians" in text
    assert "| ours: phase |" in text and "| curriculum |" in text and "| TRL: phase |" in text


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="group_size=0"):
        speed.SpeedConfig(group_size=0)
    with pytest.raises(ValueError, match="num_problems=10 is too few"):
        speed.SpeedConfig(prompts=2, rounds=2, num_problems=10)


def test_command_writes_json(tmp_path, capsys):
    path = tmp_path / "speed.json"
    argv = ["bench", "speed", "--steps", "1", "--prompts", "1", "--group-size", "2",
            "--rounds", "1", "--max-new-tokens", "4", "--sft-steps", "0", "--eos",
            "--json", str(path)]  # fmt: skip
    assert main(argv) == 0
    assert "ratio ours/TRL" in capsys.readouterr().out
    saved = json.loads(path.read_text())
    assert saved["config"]["prompts"] == 1 and len(saved["trl"]["step_s"]) == 1
    assert saved["config"]["fixed_length"] is False
    for side in ("ours", "trl"):
        assert 0 < saved[side]["completion_tokens_mean"] <= 4
    assert main(["bench", "speed", "--steps", "0"]) == 2
    assert "steps=0" in capsys.readouterr().err


def test_without_trl_the_command_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "trl" else real(n))
    assert main(["bench", "speed", "--steps", "1"]) == 2
    assert "pip install -e '.[trl]'" in capsys.readouterr().err
