"""Sample-completion tables (seele_agents.training.samples) and the trackers' run ids on resume
(seele_agents.training.tracking), through real short training runs on the tiny model."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import secrets
import sys
import types

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.config import load_config  # noqa: E402
from seele_agents.training.checkpoint import latest_checkpoint  # noqa: E402
from seele_agents.training.loop import build, loop, train  # noqa: E402
from seele_agents.training.samples import SAMPLE_FIELDS  # noqa: E402
from seele_agents.training.tracking import read_metrics  # noqa: E402

# A few seconds per run, as in tests/test_train.py: 2 problems x 2 rounds x 2 samples per step.
SMALL = [
    "sft.steps=3", "sft.num_problems=50", "problems_per_step=2", "curriculum.num_rounds=2",
    "curriculum.group_size=2", "generation.max_new_tokens=8", "eval.num_problems=4",
    "eval.hint_curve=false", "env.num_problems=20", "log.progress=false", "log.plot=false",
    "algo.micro_batch_size=4", "optim.scheduler=constant", "log.samples_per_step=3",
]  # fmt: skip


def small_config(folder, *extra):
    return load_config(None, [*SMALL, f"output_dir={json.dumps(str(folder))}", *extra])


def quiet(*args):
    pass


def rows_of(folder):
    return read_metrics(folder / "samples.jsonl")


def count_generate_calls(run, monkeypatch):
    calls = []
    real = run.generator.generate

    def counted(requests, params=None):
        calls.append(len(requests))
        return real(requests, params)

    monkeypatch.setattr(run.generator, "generate", counted)
    return calls


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """4 uninterrupted steps with a sample table after each and TensorBoard on."""
    folder = tmp_path_factory.mktemp("samples") / "full"
    config = small_config(folder, "steps=4", "log.samples_every=1", "checkpoint_every=2",
                          "log.tensorboard=true")  # fmt: skip
    run = build(config, echo=quiet)
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = count_generate_calls(run, monkeypatch)
        loop(run, 0, {}, echo=quiet)
    return run, folder, calls


def test_a_run_writes_a_table_every_n_steps(tmp_path):
    folder = tmp_path / "run"
    train(small_config(folder, "steps=4", "log.samples_every=2"), echo=quiet)
    rows = rows_of(folder)
    assert [r["step"] for r in rows] == [2, 2, 2, 4, 4, 4]
    assert all(list(r) == list(SAMPLE_FIELDS) for r in rows)
    # The first completion of problem 1 in rounds 1 and 2, then of problem 2 in round 1.
    assert [r["round"] for r in rows] == [1, 2, 1] * 2
    assert rows[0]["problem_id"] == rows[1]["problem_id"] != rows[2]["problem_id"]


def test_the_rows_are_the_rollouts_as_the_env_scored_them(full_run):
    """Every row's hint is what the env gives at the row's hint rate, its prompt what the env
    rendered, and its completion, verified again by the env, earns the row's reward."""
    run, folder, _ = full_run
    rows = rows_of(folder)
    assert [r["step"] for r in rows] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    env = run.env.unwrapped
    for row in rows:
        _, info = env.reset(
            options={"problem_id": row["problem_id"], "hint_rate": row["hint_rate"]}
        )
        assert info["hint_rate"] == row["hint_rate"]
        assert row["hint"] == info["hint_text"]
        assert row["prompt"] == info["prompt"]  # the hint starts the response (the default)
        _, reward, *_, info = env.step(row["completion"])
        assert (reward, info["correct"]) == (row["reward"], row["correct"])
    assert any(row["hint"] for row in rows) and any(row["completion"] for row in rows)


def test_logging_samples_generates_nothing_and_changes_no_result(tmp_path, full_run, monkeypatch):
    """The same run without sample tables makes the same generate calls and logs the same
    metrics: the tables are read from rollouts the step made anyway."""
    _, full, calls_with = full_run
    config = small_config(tmp_path / "off", "steps=4", "log.samples_every=0", "checkpoint_every=2")
    run = build(config, echo=quiet)
    calls_without = count_generate_calls(run, monkeypatch)
    loop(run, 0, {}, echo=quiet)
    assert calls_with == calls_without
    assert not (tmp_path / "off" / "samples.jsonl").exists()

    def results(folder):
        return [{k: v for k, v in r.items() if not k.startswith("time/")}
                for r in read_metrics(folder / "metrics.jsonl")]  # fmt: skip

    assert results(full) == results(tmp_path / "off")


def test_a_resumed_run_neither_loses_nor_repeats_rows(tmp_path, full_run, monkeypatch):
    """Stopped hard in step 4 (nothing saved after step 2's checkpoint) with step 3's rows and a
    torn line written, the resumed run's samples.jsonl equals the uninterrupted run's."""
    folder = tmp_path / "run"
    config = small_config(folder, "steps=4", "log.samples_every=1", "checkpoint_every=2")
    run = build(config, echo=quiet)
    real_step, done = run.learner.step, []

    def step(batch):
        result = real_step(batch)
        done.append(1)
        if len(done) == 4:
            raise KeyboardInterrupt  # inside an update: not saved, checkpoint 2 stands
        return result

    monkeypatch.setattr(run.learner, "step", step)
    with pytest.raises(KeyboardInterrupt):
        loop(run, 0, {}, echo=quiet)
    assert latest_checkpoint(folder).name == "step-00000002"
    assert [r["step"] for r in rows_of(folder)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    with (folder / "samples.jsonl").open("a") as file:
        file.write('{"step": 4, "problem_id": "proc')  # a write cut short
    monkeypatch.undo()
    lines = []
    train(config, resume="latest", echo=lines.append)
    assert any("samples.jsonl: dropped its torn last line" in line for line in lines)
    _, full, _ = full_run
    assert rows_of(folder) == rows_of(full)


def test_tensorboard_gets_each_table_as_text(full_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, folder, _ = full_run
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert "samples/text_summary" in events.Tags()["tensors"]
    texts = events.Tensors("samples/text_summary")
    assert [t.step for t in texts] == [1, 2, 3, 4]
    rows = rows_of(folder)
    first = texts[0].tensor_proto.string_val[0].decode()
    assert first.splitlines()[0] == "| " + " | ".join(SAMPLE_FIELDS) + " |"
    assert len(first.splitlines()) == 2 + 3  # header, rule, one line per row
    assert rows[0]["problem_id"] in first.splitlines()[2]


# --- W&B and trackio: the same run on resume -----------------------------------------------------


class FakeTracker(types.ModuleType):
    """Stands in for the wandb or trackio module (the boundary) when it is not installed; it
    records what seele hands it."""

    def __init__(self, name):
        super().__init__(name)
        # Libraries that probe for the module (accelerate: importlib.util.find_spec) need one.
        self.__spec__ = importlib.machinery.ModuleSpec(name, None)
        self.inits, self.logged = [], []

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self  # wandb.init returns a run with log() and finish()

    def log(self, data, step=None):
        self.logged.append((step, data))

    def finish(self):
        pass

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data


def tracker(name, monkeypatch, tmp_path):
    """The real module (kept in tmp_path, offline) when installed, else a FakeTracker."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for key in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):  # not in $HOME
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))  # read when trackio is imported
    try:
        importlib.import_module(name)
    except ImportError:
        pass
    else:
        return None
    fake = FakeTracker(name)
    monkeypatch.setitem(sys.modules, name, fake)
    return fake


def run_twice(folder, name):
    """One step, then resumed for a second; returns the run id stored after each."""
    ids = []
    project = f"seele-test-{secrets.token_hex(4)}"  # nothing else in it, wherever it is kept
    for steps, resume in ((1, None), (2, "latest")):
        config = small_config(folder, f"steps={steps}", f"log.{name}=true", "log.samples_every=1",
                              "checkpoint_every=1", "eval.every_steps=0",
                              f"log.project={project}")  # fmt: skip
        train(config, resume=resume, echo=quiet)
        ids.append(json.loads((folder / "trackers.json").read_text())[name])
    return ids, project


def test_wandb_continues_the_same_run_on_resume(tmp_path, monkeypatch):
    fake = tracker("wandb", monkeypatch, tmp_path)
    folder = tmp_path / "run"
    (first, second), _ = run_twice(folder, "wandb")
    assert first == second
    if fake is not None:  # wandb is not installed: what seele passed to it
        assert [(i["id"], i["resume"]) for i in fake.inits] == [(first, "never"), (first, "allow")]
        tables = [(step, data["samples"]) for step, data in fake.logged if "samples" in data]
        assert [step for step, _ in tables] == [1, 2]
        assert tables[0][1].columns == list(SAMPLE_FIELDS) and len(tables[0][1].data) == 3
        return
    # Real wandb, offline: both processes wrote to the run with the stored id, in the run folder.
    runs = sorted((folder / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(path.name.endswith(f"-{first}") for path in runs)
    tables = sorted(p.name for p in (folder / "wandb").glob("offline-run-*/files/media/table/*"))
    assert [name.split("_")[1] for name in tables] == ["1", "2"]  # samples_<step>_<hash>.json
    table = json.loads(
        next((folder / "wandb").glob("offline-run-*/files/media/table/*")).read_text()
    )
    assert table["columns"] == list(SAMPLE_FIELDS) and len(table["data"]) == 3


def test_trackio_continues_the_same_run_on_resume(tmp_path, monkeypatch):
    fake = tracker("trackio", monkeypatch, tmp_path)
    folder = tmp_path / "run"
    (first, second), project = run_twice(folder, "trackio")
    assert first == second
    if fake is not None:  # trackio is not installed: what seele passed to it
        assert [(i["name"], i["resume"]) for i in fake.inits] == [
            (first, "never"), (first, "allow"),
        ]  # fmt: skip
        tables = [(step, data["samples"]) for step, data in fake.logged if "samples" in data]
        assert [step for step, _ in tables] == [1, 2]
        assert tables[0][1].columns == list(SAMPLE_FIELDS) and len(tables[0][1].data) == 3
        return
    from trackio.sqlite_storage import SQLiteStorage

    assert SQLiteStorage.get_runs(project) == [first]  # one run, continued
    logs = SQLiteStorage.get_logs(project, first)
    tables = [(log["step"], log["samples"]) for log in logs if "samples" in log]
    assert [step for step, _ in tables] == [1, 2]
    assert list(tables[0][1]["_value"][0]) == list(SAMPLE_FIELDS)
    rewards = [log["step"] for log in logs if "reward/mean" in log]
    assert rewards == [1, 2]
