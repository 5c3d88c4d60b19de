"""``seele train`` refuses bad settings before loading anything (issue 15, #8): rc 2, a message
naming the key and the fix, within seconds and without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seele_agents.cli import main
from seele_agents.config import ConfigError, check_data_sources, eval_source, load_config

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["curriculum.options={target_accuracy: 1.5}"], "curriculum.options.target_accuracy"),
        (["curriculum.name=uft", "curriculum.options={horizon: -1}"], "options.horizon"),
        (["env.dataset=gsm9k"], "env.dataset: unknown dataset 'gsm9k'. Did you mean 'gsm8k'?"),
        (["env.dataset=gsm8k", "env.data_path=missing.jsonl"], "env.data_path"),
        (["env.dataset=gsm8k", "env.data_path=empty.jsonl"], "the file is empty"),
        (["env.dataset=gsm8k", "env.data_path=empty_folder"], "no non-empty file"),
        (["eval.dataset=math500", "eval.data_path=missing.jsonl"], "eval.data_path"),
        (["env.dataset=file"], "env.data_path"),
    ],
)
def test_bad_settings_are_refused_before_torch(tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "empty_folder").mkdir()
    # (the warm-up's skill check needs procedural problems: off, so the data is what is wrong)
    overrides = ["sft.target_step_accuracy=0", *overrides]
    argv = ["train", *[a for o in overrides for a in ("--set", o)]]
    script = (
        "import sys; from seele_agents.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert seconds < 10  # typically ~1.5 s on a busy 2-core machine; a torch import takes 5+


def test_resume_latest_in_an_empty_folder_is_refused_early(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--output-dir", "nothing", "--resume", "latest"]) == 2
    err = capsys.readouterr().err
    assert "holds no complete checkpoint" in err and "resume='auto'" in err
    assert main(["train", "--output-dir", "x", "--resume", "x/checkpoints/step-00000003"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_a_bad_curriculum_value_is_a_config_error():
    with pytest.raises(ConfigError, match=r"target_accuracy=1.5 must be strictly between"):
        load_config(None, ["curriculum.options={target_accuracy: 1.5}"])
    assert load_config(None, ["curriculum.options={target_accuracy: 0.7}"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], ("procedural", None)),
        (["env.dataset=gsm8k", "env.data_path=g.jsonl"], ("gsm8k", "g.jsonl")),
        (["env.dataset=gsm8k", "env.data_path=g.jsonl", "eval.dataset=gsm8k"],
         ("gsm8k", "g.jsonl")),
        (["env.dataset=gsm8k", "env.data_path=g.jsonl", "eval.data_path=t.jsonl"],
         ("gsm8k", "t.jsonl")),
        (["env.dataset=gsm8k", "env.data_path=g.jsonl", "eval.dataset=math500"], ("math500", None)),
    ],
)  # fmt: skip
def test_evaluation_uses_the_training_file_unless_told_otherwise(overrides, expected):
    assert eval_source(load_config(None, ["sft.steps=0", *overrides])) == expected


def test_data_sources_that_exist_pass(tmp_path):
    data = tmp_path / "g.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    check_data_sources(
        load_config(None, ["env.dataset=gsm8k", f"env.data_path={data}", "sft.steps=0"])
    )
    check_data_sources(load_config(None, []))


def test_a_fresh_run_into_an_earlier_runs_folder_is_refused_before_torch(tmp_path):
    run = tmp_path / "run" / "checkpoints" / "step-00000002"
    (run / "model").mkdir(parents=True)
    (run / "state.json").write_text("{}")  # what makes a checkpoint folder complete
    script = (
        "import sys; from seele_agents.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "train", "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "already holds checkpoints" in done.stderr and "--resume latest" in done.stderr
