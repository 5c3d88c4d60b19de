"""seele_env.export and datasets.Dataset inputs: hinted datasets in verl's and TRL's layouts,
written, read back with `datasets` and scored with the reward functions."""

from __future__ import annotations

import pytest

from seele_env.curricula import SEELE
from seele_env.env import MathHintEnv
from seele_env.errors import DatasetError, HintError
from seele_env.export import export, export_rows
from seele_env.loaders import load_problems
from seele_env.problems import Problem
from seele_env.procedural import generate_problems
from seele_env.rewards import MathReward

datasets = pytest.importorskip("datasets", reason="datasets is not installed (the data extra)")

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "Tom has 3 + 4 = <<3+4=7>>7 apples.\nSo he has 7 apples.\n#### 7"},
    {"question": "A pen costs 2 dollars. How much do 5 pens cost?",
     "answer": "5 pens cost 5 * 2 = <<5*2=10>>10 dollars.\nThat is 10 dollars in all.\n#### 10"},
]  # fmt: skip


@pytest.fixture(scope="module")
def reward():
    with MathReward(num_workers=2) as shared:
        yield shared


def _rest(info: dict) -> str:
    """The right completion after the hint: the rest of the reference solution."""
    return "".join(info["hint_units"][info["hint_len"] :])


def test_verl_round_trip_right_answers_score_1_wrong_0(tmp_path, reward):
    problems = [*generate_problems(6, difficulty=2), *load_problems(
        "gsm8k", data_path=datasets.Dataset.from_list(GSM8K_ROWS))]  # fmt: skip
    path = export(problems, tmp_path / "train.parquet", layout="verl", hint_rate=0.5)
    data = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert set(data.column_names) == {"data_source", "prompt", "ability", "reward_model",
                                      "extra_info"}  # fmt: skip
    assert len(data) == len(problems)
    row = data[0]
    assert row["prompt"][0]["role"] == "user" and row["ability"] == "math"
    assert row["reward_model"] == {"style": "rule", "ground_truth": problems[0].answer}
    info = row["extra_info"]
    assert "".join(info["hint_units"]) == problems[0].solution  # the units rebuild the solution
    assert info["hint_text"] in row["prompt"][0]["content"] and info["hint_len"] > 0
    assert data[6]["reward_model"]["ground_truth"] == "7"  # GSM8K's answer after '####'
    rests = [_rest(r["extra_info"]) for r in data]
    assert all(rests)  # hint 0.5 leaves the answer to the model
    golds = [r["reward_model"]["ground_truth"] for r in data]
    # GSM8K's cleaned solutions end in prose ("So he has 7 apples."): a model states the answer.
    right = [f"{rest} The answer is {gold}." for rest, gold in zip(rests, golds, strict=True)]
    scores = reward.compute_score_batch(data["data_source"], right, golds, data["extra_info"])
    assert scores == [1.0] * len(data)
    wrong = [f"{rest} Actually the answer is \\boxed{{-999}}." for rest in rests]
    assert reward.compute_score_batch(data["data_source"], wrong, golds) == [0.0] * len(data)
    one = reward.compute_score(row["data_source"], rests[0], golds[0], dict(info))  # procedural
    assert one == 1.0


def test_trl_round_trip_with_response_side_hints(tmp_path, reward):
    problems = generate_problems(6, difficulty=2)
    rates = {p.id: r for p, r in zip(problems, (0, 0.25, 0.5, 0.75, 1, 1), strict=True)}
    path = export(problems, tmp_path / "train.jsonl", layout="trl", hint_rate=rates,
                  placement="response")  # fmt: skip
    data = datasets.load_dataset("json", data_files=str(path), split="train")
    assert {"prompt", "answer", "info"} <= set(data.column_names)
    infos = data["info"]
    assert infos[0]["hint_len"] == 0 and infos[-1]["hint_len"] == infos[-1]["n_units"]
    for row, info in zip(data, infos, strict=True):  # the hint is the assistant turn to continue
        if info["hint_len"]:
            assert row["prompt"][-1] == {"role": "assistant", "content": info["hint_text"]}
        else:
            assert row["prompt"][-1]["role"] == "user"
    completions = [[{"role": "assistant", "content": _rest(i)}] for i in infos]
    assert reward(data["prompt"], completions, answer=data["answer"], info=infos) == [1.0] * 6
    assert (
        reward(data["prompt"], ["\\boxed{-999}"] * 6, answer=data["answer"], info=infos)
        == [0.0] * 6
    )


def test_text_prompts_render_the_template_with_the_hint():
    [problem] = generate_problems(1)
    [row] = export_rows([problem], layout="trl", hint_rate=1.0, placement="response",
                        conversational=False, template="plain")  # fmt: skip
    assert row["prompt"] == f"Problem: {problem.question}\nSolution:\n{problem.solution}"


def test_curriculum_chosen_rates(tmp_path):
    env = MathHintEnv(problems=generate_problems(5, difficulty=3))
    curriculum = SEELE(env, frozen=True)
    rows = export_rows(curriculum, layout="trl", hint_rate=None)
    chosen = curriculum.hint_rates([r["info"]["problem_id"] for r in rows])
    assert [r["info"]["hint_rate"] for r in rows] == pytest.approx(list(chosen))
    # SEELE's first visit: all but the last step
    assert all(r["info"]["hint_len"] == r["info"]["n_units"] - 1 for r in rows)
    # an env without a curriculum gives its default rate; a pinned rate overrides both
    env_rows = export_rows(MathHintEnv(problems=list(env.problems), default_hint_rate=1.0),
                           layout="trl", hint_rate=None)  # fmt: skip
    assert all(r["info"]["hint_len"] == r["info"]["n_units"] for r in env_rows)
    assert all(r["extra_info"]["hint_len"] == 0 for r in export_rows(curriculum, hint_rate=0.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "openai"}, "layout='openai' is not one of"),
        ({"layout": "verl", "placement": "response"}, "layout='verl' needs placement='prompt'"),
        ({"hint_rate": 1.5}, r"hint_rate=1.5 is outside \[0, 1\]"),
        ({"hint_rate": {"nope": 0.5}}, "hint_rate maps no rate for 1 problem"),
        ({"hint_rate": None}, "hint_rate=None takes the rates from a curriculum"),
        ({"hint_unit": "words"}, "hint_unit='words' is not one of"),
    ],
)
def test_bad_export_arguments_are_refused(kwargs, match):
    with pytest.raises(HintError, match=match):
        export_rows(generate_problems(1), **kwargs)


def test_a_hint_for_an_answer_only_problem_is_refused():
    answer_only = Problem("aime/1", "Find x.", "42")
    assert export_rows([answer_only])[0]["extra_info"]["n_units"] == 0
    with pytest.raises(HintError, match="'aime/1', which has no reference solution"):
        export_rows([answer_only], hint_rate=0.5)


def test_unsupported_output_suffix(tmp_path):
    with pytest.raises(DatasetError, match=r"unsupported suffix '\.csv'"):
        export(generate_problems(1), tmp_path / "x.csv")


def test_seele_export_command(tmp_path, capsys):
    pytest.importorskip("torch")  # the `seele` command lives in seele_agents
    from seele_agents.cli import main

    out = tmp_path / "x.parquet"
    assert main(["export", str(out), "--num-problems", "3", "--hint-rate", "0.5"]) == 0
    assert "wrote 3 rows (verl layout)" in capsys.readouterr().out
    assert len(datasets.load_dataset("parquet", data_files=str(out), split="train")) == 3
    assert main(["export", str(out), "--layout", "verl", "--placement", "response"]) == 2
    assert "needs placement='prompt'" in capsys.readouterr().err


# -- a datasets.Dataset wherever a data file is accepted ---------------------------------------


def test_a_dataset_object_loads_like_a_file(tmp_path):
    ds = datasets.Dataset.from_list(GSM8K_ROWS)
    from_object = load_problems("gsm8k", data_path=ds)
    path = tmp_path / "train.jsonl"
    ds.to_json(str(path))
    from_file = load_problems("gsm8k", data_path=path)
    assert [(p.question, p.answer, p.solution) for p in from_object] == [
        (p.question, p.answer, p.solution) for p in from_file
    ]
    generic = datasets.Dataset.from_list([{"prompt": "2 + 2?", "gold": "4"}])
    [problem] = load_problems(generic, fields={"question": "prompt", "answer": "gold"})
    assert (problem.question, problem.answer) == ("2 + 2?", "4")
    env = MathHintEnv("file", data_path=generic, fields={"question": "prompt", "answer": "gold"})
    assert "2 + 2?" in env.reset(seed=0)[0]
    env.close()


def test_dataset_object_errors_name_the_fix():
    with pytest.raises(DatasetError, match=r"Columns present: \['gold', 'q'\]. Pass fields="):
        load_problems(datasets.Dataset.from_list([{"q": "2 + 2?", "gold": "4"}]))
    with pytest.raises(DatasetError, match=r"splits \['train'\]; pass one split, e.g. data_path="):
        load_problems("file", data_path=datasets.DatasetDict(
            {"train": datasets.Dataset.from_list(GSM8K_ROWS)}))  # fmt: skip
    with pytest.raises(DatasetError, match=r"a datasets\.Dataset given as data_path is already"):
        load_problems("file", data_path=datasets.Dataset.from_list(GSM8K_ROWS), revision="x")
    with pytest.raises(
        DatasetError, match=r"dataset must be a name, a hub id or a datasets\.Dataset"
    ):
        load_problems(42)
