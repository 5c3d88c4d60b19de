"""``seele eval``: the pass@k maths by hand, settings errors, the loop on real data with a scripted
generator, and the command end to end on the tiny model (outputs, resume, refused folders)."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.cli import main  # noqa: E402
from seele_agents.evaluation import command as eval_command  # noqa: E402
from seele_agents.evaluation import metrics as evaluation  # noqa: E402
from seele_agents.evaluation.command import EvalCommandConfig as EvalConfig  # noqa: E402
from seele_agents.evaluation.metrics import EvalError, pass_at_k, summarise  # noqa: E402
from seele_agents.generation import Sample  # noqa: E402
from seele_env.env import MathHintEnv  # noqa: E402
from seele_env.loaders import load_problems  # noqa: E402

# --- the maths -----------------------------------------------------------------------------------


def test_pass_at_k_by_hand():
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6.
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)  # pass@1 is the fraction correct
    assert pass_at_k(10, 0, 4) == 0.0 and pass_at_k(10, 7, 4) == 1.0


def test_pass_at_k_matches_binomial_coefficients():
    """The product form against the textbook ratio of binomials, for every small case."""
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1.0 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [(4, 5, 1, "c=5"), (4, 1, 5, "k=5"), (4, 1, 0, "k=0"), (4, -1, 1, "c=-1"), (4.0, 1, 1, "ints")],
)
def test_pass_at_k_rejects_impossible_counts(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    ("samples", "ks"), [(0, []), (1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])]
)
def test_pass_at_k_ks(samples, ks):
    assert evaluation.pass_at_k_ks(samples) == ks


def _record(greedy, correct, tokens=None, reasons=None, rate=0.0):
    k = len(correct)
    return {
        "greedy": {"correct": greedy, "tokens": 10, "finish_reason": "stop"},
        "samples": {"correct": correct, "tokens": tokens or [20] * k,
                    "finish_reasons": reasons or ["stop"] * k},
        "realised_hint_rate": rate,
    }  # fmt: skip


def test_summarise_by_hand():
    records = [
        _record(True, [True, False, False, False], reasons=["length", "stop", "stop", "stop"]),
        _record(False, [True, True, True, True], tokens=[2, 4, 6, 8], rate=0.5),
    ]
    s = summarise(records)
    assert s["n"] == 2
    assert s["greedy/pass@1"] == 0.5
    assert s["sampled/avg@4"] == pytest.approx((1 / 4 + 4 / 4) / 2)
    assert s["sampled/pass@1"] == pytest.approx(s["sampled/avg@4"])  # unbiased pass@1 = avg@K
    # Problem 1: 1 - C(3,2)/C(4,2) = 0.5; problem 2 always right.
    assert s["sampled/pass@2"] == pytest.approx(0.75)
    assert s["sampled/pass@4"] == pytest.approx(1.0)
    assert s["hint_rate/realised"] == 0.25
    # Tokens: greedy 10 + 10, samples 4 x 20 and 2+4+6+8 -> 120 over 10 completions.
    assert s["tokens/mean"] == pytest.approx(12.0)
    assert s["tokens/truncated_fraction"] == pytest.approx(0.1)
    assert "sampled/pass@3" not in s


def test_summarise_greedy_only_and_empty():
    s = summarise([_record(True, []), _record(True, []), _record(False, [])])
    assert s["greedy/pass@1"] == pytest.approx(2 / 3)
    assert not any(key.startswith("sampled/") for key in s)
    assert summarise([]) == {"n": 0}
    with pytest.raises(ValueError, match="different numbers of samples"):
        summarise([_record(True, [True]), _record(True, [True, False])])


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hint_rates": (0.0, 1.5)}, "hint rate 1.5 is outside"),
        ({"hint_rates": ()}, "no hint rate"),
        ({"datasets": ("gsm8", )}, "Did you mean 'gsm8k'"),
        ({"datasets": ()}, "no dataset"),
        ({"datasets": ("gsm8k", "gsm8k")}, "named twice"),
        ({"datasets": ("missing.jsonl",)}, "missing.jsonl does not exist"),
        ({"samples": 4, "temperature": 0.0}, "temperature"),
        ({"samples": -1}, "samples=-1"),
        ({"top_p": 0.0}, "top_p=0.0"),
        ({"placement": "middle"}, "placement='middle'"),
        ({"template": "nonsense"}, "{question}"),
        ({"datasets": ("gsm8k", "math500"), "data_path": "."}, "use --data-dir"),
        ({"data_dir": "/no/such/folder"}, "is not a folder"),
        ({"datasets": ("procedural",), "difficulty": 99}, "procedural problems"),
    ],
)  # fmt: skip
def test_bad_settings_are_named(kwargs, message):
    settings = {"model": "tiny", "datasets": ("procedural",), **kwargs}
    with pytest.raises(EvalError, match=message.replace("(", r"\(").replace("{", r"\{")):
        EvalConfig(**settings)


def test_parsers():
    assert eval_command.parse_hint_rates("0, 0.5,1,0.5") == (0.0, 0.5, 1.0)
    with pytest.raises(EvalError, match="'half' is not a number"):
        eval_command.parse_hint_rates("0,half")
    assert eval_command.parse_difficulty("2") == 2
    assert eval_command.parse_difficulty("1-3") == (1, 3)
    with pytest.raises(EvalError, match="'hard'"):
        eval_command.parse_difficulty("hard")


# --- the loop, with a scripted generator on real data --------------------------------------------


class ScriptedGenerator:
    """Answers from a script: the greedy answer of problem i is right when i is even; of its K
    samples, the first ``i % (K + 1)`` are right. Finds the problem by the prompt it was given."""

    def __init__(self, env: MathHintEnv, samples: int) -> None:
        self.samples = samples
        self.index, self.answer = {}, {}
        for i, pid in enumerate(env.problem_ids):
            _, info = env.reset(options={"problem_id": pid, "hint_rate": 0.0})
            self.index[info["prompt"]] = i
            self.answer[info["prompt"]] = env.problems.get(pid).answer
        self.calls: list[int] = []

    def generate(self, requests, params=None):
        self.calls.append(len(requests))
        seen: Counter[str] = Counter()
        out = []
        for request in requests:
            i = self.index[request.prompt]
            if params.temperature == 0:
                right = i % 2 == 0
            else:
                right = seen[request.prompt] < i % (self.samples + 1)
                seen[request.prompt] += 1
            answer = self.answer[request.prompt] if right else "-98765"
            out.append(Sample([1], [], [2, 3], f"So the answer is $\\boxed{{{answer}}}$.",
                              finish_reason="stop"))  # fmt: skip
        return out

    def sync_weights(self) -> None:
        pass


def test_evaluate_model_scores_as_scripted_on_gsm8k(shared_data):
    problems = load_problems("gsm8k", data_path=shared_data / "gsm8k", split="test", limit=6)
    env = MathHintEnv(problems=problems, template="plain")
    generator = ScriptedGenerator(env, samples=3)
    result = evaluation.evaluate_model(
        generator, {"gsm8k": env}, hint_rates=(0.0, 0.5), samples=3, batch_size=4,
        echo=lambda *_: None,
    )  # fmt: skip
    assert [(c["dataset"], c["hint_rate"], c["n"]) for c in result.cells] == [
        ("gsm8k", 0.0, 6), ("gsm8k", 0.5, 6),
    ]  # fmt: skip
    # Batches of 4 then 2 problems, each a greedy call and a sampled call, per cell.
    assert generator.calls == [4, 12, 2, 6] * 2
    for cell in result.cells:
        assert cell["greedy/pass@1"] == pytest.approx(3 / 6)  # problems 0, 2, 4
        # Correct samples per problem: 0, 1, 2, 3, 0, 1 of 3.
        assert cell["sampled/avg@3"] == pytest.approx((0 + 1 + 2 + 3 + 0 + 1) / 18)
        expected_pass2 = sum(pass_at_k(3, c, 2) for c in (0, 1, 2, 3, 0, 1)) / 6
        assert cell["sampled/pass@2"] == pytest.approx(expected_pass2)
        assert cell["tokens/mean"] == 2.0 and cell["tokens/truncated_fraction"] == 0.0
    zero, half = result.cells
    assert zero["hint_rate/realised"] == 0.0
    assert 0.2 < half["hint_rate/realised"] < 0.8  # l/|y| of GSM8K's few-step solutions
    assert result.generated == 12 and result.notes == []


def test_answer_only_sets_skip_hinted_cells(shared_data, capsys):
    problems = load_problems("aime25", data_path=shared_data / "aime25", split="test", limit=3)
    env = MathHintEnv(problems=problems, template="plain")
    result = evaluation.evaluate_model(ScriptedGenerator(env, 0), {"aime25": env},
                                       hint_rates=(0.0, 0.5))  # fmt: skip
    zero, half = result.cells
    assert zero["n"] == 3 and zero["greedy/pass@1"] == pytest.approx(2 / 3)
    assert half["n"] == 0 and half["left_out"] == 3 and half["skipped"] == evaluation.NO_SOLUTIONS
    assert "aime25 at hint rate 0.5: skipped" in capsys.readouterr().out
    table = evaluation.format_table(result.cells, 0)
    assert "| aime25 | 0 | 0.5 | – | n/a (no solutions) |" in table


# --- the command, on the tiny model --------------------------------------------------------------

TINY = ["eval", "--model", "tiny", "--dataset", "procedural", "--limit", "6", "--difficulty", "1",
        "--hint-rates", "0,1", "--samples", "2", "--max-new-tokens", "6", "--batch-size", "4",
        "--template", "plain", "--no-progress"]  # fmt: skip


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_eval_command_outputs_and_resume(tmp_path, capsys):
    full = tmp_path / "full"
    assert main([*TINY, "--output-dir", str(full)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy vs hint rate" in printed and "| procedural | 6 | 1 |" in printed
    for name in eval_command.OUTPUT_FILES:
        assert (full / name).stat().st_size > 0, name
    records = _lines(full / evaluation.RESULTS_FILE)
    assert len(records) == 12  # 6 problems x 2 rates
    summary = json.loads((full / eval_command.SUMMARY_FILE).read_text())
    zero, one = summary["cells"]
    # The whole solution as a hint ends in its \boxed{answer}; six tokens of an untrained model
    # rarely add another, so the curve must rise from rate 0 to rate 1.
    assert one["hint_rate/realised"] == 1.0 and one["greedy/pass@1"] > zero["greedy/pass@1"]
    assert {len(r["samples"]["correct"]) for r in records} == {2}
    assert summary["settings"]["samples"] == 2 and summary["template"] == "plain"

    # Interrupted: 5 results kept and half of the sixth written; the rerun makes the other 7.
    part = tmp_path / "part"
    shutil.copytree(full, part)
    lines = (full / evaluation.RESULTS_FILE).read_text(encoding="utf-8").splitlines(True)
    (part / evaluation.RESULTS_FILE).write_text("".join(lines[:5]) + lines[5][:40])
    config = eval_command.config_from_args(_parse([*TINY, "--output-dir", str(part)]))
    result = eval_command.run_eval(config, progress=False, echo=lambda *_: None)
    assert result.generated == 7
    again = _lines(part / evaluation.RESULTS_FILE)
    key = evaluation._key
    assert sorted(again, key=key) == sorted(records, key=key)  # the same texts: batches reseeded
    assert json.loads((part / eval_command.SUMMARY_FILE).read_text())["cells"] == summary["cells"]


def _parse(argv):
    from seele_agents.cli import _parser

    return _parser().parse_args(argv)


def test_eval_command_refuses_other_settings_in_a_folder(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path)]
    assert main([*TINY, *out]) == 0
    capsys.readouterr()
    assert main([*TINY, "--samples", "3", *out]) == 2
    error = capsys.readouterr().err
    assert "samples (2 there, 3 now)" in error and "--overwrite" in error
    assert main([*TINY, "--samples", "3", "--overwrite", *out]) == 0
    assert {len(r["samples"]["correct"]) for r in _lines(tmp_path / "results.jsonl")} == {3}


def test_eval_command_bad_input_exits_2(tmp_path, capsys):
    assert main(["eval", "--model", "tiny", "--dataset", "math5000"]) == 2
    assert "Did you mean 'math500'" in capsys.readouterr().err
    assert main([*TINY, "--hint-rates", "0,2", "--output-dir", str(tmp_path)]) == 2
    assert "hint rate 2.0 is outside [0, 1]" in capsys.readouterr().err


def test_eval_on_shared_sets_by_folder(shared_data, tmp_path):
    config = EvalConfig(
        model="tiny", datasets=("minerva", "aime25"), data_dir=str(shared_data), limit=2,
        hint_rates=(0.0, 0.5), max_new_tokens=4, template="plain", output_dir=str(tmp_path),
    )  # fmt: skip
    result = eval_command.run_eval(config, progress=False, echo=lambda *_: None)
    cells = {(c["dataset"], c["hint_rate"]): c for c in result.cells}
    assert cells["minerva", 0.5]["n"] == 2  # found as minerva_math/, and has solutions
    assert cells["aime25", 0.5].get("skipped") == evaluation.NO_SOLUTIONS
    assert "n/a (no solutions)" in (tmp_path / "results.md").read_text()


def test_resolve_model_reads_seele_runs(tmp_path):
    from seele_agents.config import load_config
    from seele_agents.training.loop import train

    overrides = ["steps=1", "sft.steps=0", "problems_per_step=2", "curriculum.num_rounds=1",
                 "curriculum.group_size=2", "generation.max_new_tokens=4", "eval.num_problems=2",
                 "env.num_problems=8", "log.progress=false", "log.plot=false",
                 "env.template=r1", f"output_dir={json.dumps(str(tmp_path / 'run'))}"]  # fmt: skip
    train(load_config(None, overrides), echo=lambda *_: None)
    path, template = eval_command.resolve_model(str(tmp_path / "run"), echo=lambda *_: None)
    assert path.endswith("step-00000001/model") and template == "r1"
    checkpoint = Path(path).parent
    assert eval_command.resolve_model(str(checkpoint)) == (path, "r1")
    with pytest.raises(EvalError, match=r"neither config\.json"):
        eval_command.resolve_model(str(tmp_path))
    assert eval_command.default_output_dir(str(checkpoint)) == Path("evals") / "run_step-00000001"
