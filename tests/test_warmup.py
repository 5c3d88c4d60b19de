"""The supervised warm-up of ``seele train``: its skill check, its stopping rule and its report."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

import seele_agents.training.sft as sft_module
from seele_agents.config import load_config
from seele_agents.models import load_model
from seele_agents.training.sft import warm_up

QUICK = [
    "sft.steps=30", "sft.check_every=10", "sft.check_problems=4", "sft.num_problems=40",
    "sft.batch_size=4", "generation.max_new_tokens=8", "log.progress=false",
]  # fmt: skip


def warm(tmp_path, monkeypatch, *overrides, accuracies=None):
    """Run the warm-up of a config; with ``accuracies``, the skill check reports those."""
    config = load_config(None, [*QUICK, f"output_dir={json.dumps(str(tmp_path))}", *overrides])
    if accuracies is not None:
        values = iter(accuracies)
        monkeypatch.setattr(sft_module, "_skill_check", lambda *_: lambda: next(values))
    model, tokenizer = load_model("tiny", seed=0)
    lines: list[str] = []
    warm_up(config, model, tokenizer, tmp_path / "sft", fresh=True, echo=lines.append)
    return "\n".join(lines)


def test_warm_up_stops_once_the_skill_check_passes(tmp_path, monkeypatch):
    text = warm(tmp_path, monkeypatch, "sft.target_step_accuracy=0.9", accuracies=[0.5, 0.95])
    assert "sft/steps 20" in text  # checked at 10 (0.5) and 20 (0.95 >= 0.9): stopped there
    assert "per-step accuracy 0.950 at step 20, target reached (0.50, 0.95" in text


def test_warm_up_runs_every_step_and_says_so_when_the_target_is_missed(tmp_path, monkeypatch):
    text = warm(tmp_path, monkeypatch, "sft.target_step_accuracy=0.9", accuracies=[0.1, 0.2])
    assert "sft/steps 30" in text  # checks at 10 and 20; none at the last step
    assert "target 0.9 not reached" in text


def test_the_real_skill_check_grades_the_tiny_model(tmp_path, monkeypatch):
    # Thirty steps teach nothing: the real check runs and reports per-step accuracy 0.
    text = warm(tmp_path, monkeypatch, "sft.target_step_accuracy=0.5")
    assert "per-step accuracy 0.000 at step 20, target 0.5 not reached" in text


def test_no_skill_check_on_families_it_cannot_grade(tmp_path, monkeypatch):
    text = warm(tmp_path, monkeypatch, "env.families=[linear]", "sft.target_step_accuracy=0.9")
    assert "no skill check" in text and "runs all 30 steps" in text
    assert "sft/steps 30" in text
    assert "skill check:" not in text


def test_warm_up_draws_the_families_of_the_training_env_unless_told(tmp_path, monkeypatch):
    seen = []

    def examples(problems, template="plain", **_):
        seen.append({p.metadata["family"] for p in problems})
        return [(p.question, p.solution) for p in problems]

    monkeypatch.setattr("seele_agents.training.sft.sft_examples", examples)
    warm(tmp_path, monkeypatch, "sft.target_step_accuracy=0", "env.families=[running]")
    warm(tmp_path, monkeypatch, "sft.target_step_accuracy=0", "sft.families=[word, linear]")
    assert seen == [{"running"}, {"word", "linear"}]
