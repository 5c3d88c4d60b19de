"""Tests for seele_env.loaders: real shared datasets (when present), every file format, malformed
rows, error messages, the Hugging Face route, and the pure cleaning helpers."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import warnings
from pathlib import Path

import pytest

from seele_env.errors import DatasetError
from seele_env.loaders import (
    DATASETS,
    DatasetWarning,
    LoadReport,
    ProblemSet,
    UnknownProblemError,
    after_think,
    clean_gsm8k,
    format_number,
    last_boxed,
    load_problems,
    split_signed_solutions,
    strip_math_delimiters,
)
from seele_env.problems import Problem

SHARED = Path(
    os.environ.get("SEELE_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"shared datasets not found at {SHARED} (set SEELE_SHARED_DATA to their folder)",
)


def _load_quietly(*args, **kwargs) -> ProblemSet:
    """load_problems that fails the test on any DatasetWarning (the real files are clean)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)
        return load_problems(*args, **kwargs)


def _write_jsonl(path: Path, rows: list) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Real data: row counts from the READMEs and hand-checked rows
# --------------------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    ("name", "folder", "split", "n_rows", "file_name"),
    [
        ("gsm8k", "gsm8k", "test", 1319, "test.jsonl"),
        ("gsm8k", "gsm8k", "train", 7473, "train.jsonl"),
        ("math", "math", "test", 5000, "test.jsonl"),
        ("math500", "math500", None, 500, "test.jsonl"),
        ("aime24", "aime24", None, 30, "test.jsonl"),
        ("aime25", "aime25", None, 30, "test.fixed.jsonl"),
        ("amc23", "amc23", None, 40, "test.jsonl"),
        ("minerva", "minerva_math", None, 272, "test.jsonl"),
        ("olympiadbench", "olympiadbench", None, 675, "test.jsonl"),
    ],
)
def test_real_row_counts(name, folder, split, n_rows, file_name):
    ps = _load_quietly(name, data_path=SHARED / folder, split=split)
    assert (ps.report.n_rows, ps.report.n_loaded, len(ps)) == (n_rows, n_rows, n_rows)
    assert ps.report.location == str(SHARED / folder / file_name)
    assert ps.report.summary() == (f"{name} {file_name}: {n_rows} rows, {n_rows} loaded, 0 skipped")
    assert len(set(ps.ids)) == n_rows
    assert all(p.source == name for p in ps)
    # Hint support follows the registry: answer-only sets carry no solution at all.
    assert all(p.has_solution == DATASETS[name].has_solutions for p in ps)


@needs_shared
def test_math_train_skips_the_two_empty_boxes_and_warns():
    # train/number_theory/7115 and 7117 end in an empty "\boxed{}" (a defect of MATH itself).
    with pytest.warns(DatasetWarning, match=r"7500 rows, 7498 loaded, 2 skipped"):
        ps = load_problems("math", data_path=SHARED / "math", split="train")
    assert ps.report.skipped == {"no final answer": 2}
    assert "math/train/number_theory/7115.json" not in ps


@needs_shared
@pytest.mark.slow
def test_prm800k_is_train12k_without_math500():
    with pytest.warns(DatasetWarning, match="12000 rows, 11998 loaded"):
        ps = load_problems("prm800k", data_path=SHARED / "math")
    assert ps.report.location.endswith("train12k.jsonl")
    math500 = _load_quietly("math500", data_path=SHARED / "math500")
    test_ids = {p.metadata["unique_id"] for p in math500}
    own_ids = {p.metadata["unique_id"] for p in ps}
    assert not test_ids & own_ids
    assert len({i for i in own_ids if i.startswith("train/")}) == 7498


@needs_shared
def test_gsm8k_test_row0_cleaned_exactly():
    ps = _load_quietly("gsm8k", data_path=SHARED / "gsm8k", split="test")
    first = ps[0]
    assert first.id == "gsm8k/test/0"
    assert first.answer == "18"
    assert first.solution == (
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
        "She makes 9 * 2 = $18 every day at the farmer\u2019s market."
    )
    assert ps.get("gsm8k/test/2").answer == "70000"
    for p in ps:
        assert "<<" not in p.solution and ">>" not in p.solution and "####" not in p.solution
        assert re.fullmatch(r"-?\d+(\.\d+)?", p.answer), p.answer


@needs_shared
def test_gsm8k_thousands_separators_removed():
    raw = [json.loads(line) for line in (SHARED / "gsm8k/train.jsonl").open(encoding="utf-8")]
    with_comma = [i for i, r in enumerate(raw) if "," in r["answer"].rsplit("####", 1)[1]]
    assert len(with_comma) == 79  # counted independently of the loader
    ps = _load_quietly("gsm8k", data_path=SHARED / "gsm8k", split="train")
    for i in with_comma:
        expected = raw[i]["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        assert ps[i].answer == expected


@needs_shared
def test_math_rows_and_boxed_agree_with_answer_field():
    ps = _load_quietly("math", data_path=SHARED / "math", split="test")
    p = ps.get("math/test/algebra/2.json")
    assert p.answer == r"\frac{1}{2}"
    assert p.metadata["level"] == "Level 5" and p.metadata["type"] == "Algebra"
    assert p.solution.endswith(r"$\boxed{\frac{1}{2}}$.")
    # The README derives `answer` from the last box: our brace matching must agree everywhere.
    for p in ps:
        assert last_boxed(p.solution) == p.answer


@needs_shared
def test_math500_and_minerva_rows():
    ps = _load_quietly("math500", data_path=SHARED / "math500")
    assert ps[0].id == "math500/test/precalculus/807.json"
    assert ps[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    minerva = _load_quietly("minerva", data_path=SHARED / "minerva_math")
    assert (minerva[0].id, minerva[0].answer, minerva[1].answer) == ("minerva/0", "1.6", "4.5e33")
    assert minerva[0].metadata["type"] == "Introduction to Astronomy (8.282J Spring 2006)"


@needs_shared
def test_aime24_signatures_removed_first_solution_kept():
    ps = _load_quietly("aime24", data_path=SHARED / "aime24")
    first = ps[0]
    assert (first.id, first.answer) == ("aime24/60", "204")
    assert first.solution.endswith(r"3.4$ hours, or $\framebox{204}$ minutes")
    assert "Failure.net" not in first.solution
    assert first.metadata["other_solutions"][0].endswith("$180 + 24 = 204$.")  # "-sepehr2010" gone
    signatures = ("~", "-Failure", "-Multpi12", "-Benedict", "- [spectral", "Solution by Quantum")
    for p in ps:
        for text in [p.solution, *p.metadata["other_solutions"]]:
            for line in text.split("\n"):
                assert not line.strip().startswith(signatures), (p.id, line)
            assert "~akliu" not in text and "-westwoodmonster" not in text
    # Conservative: maths lines that start with "-" survive.
    row77 = ps.get("aime24/77")
    kept = "\n".join([row77.solution, *row77.metadata["other_solutions"]])
    assert r"- 10^4 \left( a + b + c \right) + 10^6" in kept
    row67 = ps.get("aime24/67")
    assert r"\[x^{10}=y^x~(1)\]" in "\n".join([row67.solution, *row67.metadata["other_solutions"]])


@needs_shared
def test_aime25_prefers_fixed_file_and_repairs_raw_one():
    fixed = _load_quietly("aime25", data_path=SHARED / "aime25")
    raw = _load_quietly("aime25", data_path=SHARED / "aime25" / "test.jsonl")
    assert [p.question for p in raw] == [p.question for p in fixed]
    repaired = [p.metadata["row_index"] for p in raw if p.metadata.get("repaired_control_chars")]
    assert repaired == [18, 19, 27]  # the rows the README names
    assert all(p.solution is None for p in fixed)


@needs_shared
def test_amc23_float_answers():
    ps = _load_quietly("amc23", data_path=SHARED / "amc23")
    assert (ps[0].id, ps[0].answer) == ("amc23/0", "27")
    assert all(not p.answer.endswith(".0") for p in ps)
    assert "-1" in [p.answer for p in ps]


@needs_shared
def test_olympiadbench_first_row_and_lists():
    ps = _load_quietly("olympiadbench", data_path=SHARED / "olympiadbench")
    first = ps[0]
    assert (first.id, first.answer) == ("olympiadbench/1606", "2")
    assert first.solution.startswith(
        "Sergey can determine Xenia's number in 2 but not fewer moves."
    )
    assert first.metadata["subfield"] == "Combinatorics"
    assert ps[1].answer == r"\frac{1}{2 n+2}"  # "$...$" stripped
    assert "69, 84" in [p.answer for p in ps]  # "$69$,$84$"
    several = [p for p in ps if p.metadata["other_solutions"]]
    assert len(several) == 675 - 537  # README: 537 rows have exactly one solution


# --------------------------------------------------------------------------------------------
# Generic files: every format with a field mapping
# --------------------------------------------------------------------------------------------

ROWS = [
    {"key": "a", "prompt": "What is 1+1?", "gold": "2", "work": "1+1=\\boxed{2}", "lvl": 1},
    {"key": "b", "prompt": "What is 2+3?", "gold": "5", "work": "2+3=5", "lvl": 2},
]
MAPPING = {"id": "key", "question": "prompt", "answer": "gold", "solution": "work"}


def _write(fmt: str, path: Path) -> Path:
    if fmt == "jsonl":
        return _write_jsonl(path / "rows.jsonl", ROWS)
    if fmt == "json-list":
        (path / "rows.json").write_text(json.dumps(ROWS), encoding="utf-8")
    elif fmt == "json-data":
        (path / "rows.json").write_text(json.dumps({"data": ROWS}), encoding="utf-8")
    elif fmt == "json-splits":
        body = {"train": [{"prompt": "x", "gold": "0"}], "test": ROWS}
        (path / "rows.json").write_text(json.dumps(body), encoding="utf-8")
    elif fmt == "csv":
        with (path / "rows.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
        return path / "rows.csv"
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow", reason="pyarrow is needed to write a parquet file")
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path / "rows.parquet")
        return path / "rows.parquet"
    return path / "rows.json"


@pytest.mark.parametrize(
    "fmt", ["jsonl", "json-list", "json-data", "json-splits", "csv", "parquet"]
)
def test_file_formats_with_mapping(tmp_path, fmt):
    path = _write(fmt, tmp_path)
    ps = _load_quietly("file", data_path=path, split="test", fields=MAPPING)
    assert ps.ids == ["rows/a", "rows/b"]
    assert [(p.question, p.answer, p.solution) for p in ps] == [
        ("What is 1+1?", "2", "1+1=\\boxed{2}"),
        ("What is 2+3?", "5", "2+3=5"),
    ]
    assert ps[0].source == "rows"
    assert str(ps[1].metadata["lvl"]) == "2"  # CSV gives "2", the others 2
    assert ps.report.n_rows == 2 and ps.report.location == str(path)


def test_answer_from_boxed_when_no_answer_field_and_default_ids(tmp_path):
    path = _write_jsonl(tmp_path / "p.jsonl", [{"problem": "q?", "solution": "so \\boxed{7}."}])
    ps = _load_quietly(
        "file", data_path=path, fields={"question": "problem", "solution": "solution"}
    )
    assert (ps[0].id, ps[0].answer, ps[0].solution) == ("p/train/0", "7", "so \\boxed{7}.")
    # Without fields, question/problem, answer, solution and id columns are found by name.
    assert _load_quietly("file", data_path=path)[0].answer == "7"


def test_malformed_rows_counted_and_one_warning(tmp_path):
    rows = [
        {"id": 1, "question": "ok?", "answer": "1"},
        "{not json",
        {"id": 2, "question": "  ", "answer": "2"},
        {"id": 3, "question": "no answer?"},
        {"id": 1, "question": "dup?", "answer": "4"},
        [1, 2],
        {"id": 5, "question": "fine?", "answer": 5},
    ]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.warns(DatasetWarning) as record:
        ps = load_problems("file", data_path=path)
    assert len(record) == 1
    assert str(record[0].message) == ps.report.summary()
    assert ps.ids == ["bad/1", "bad/5"] and ps[1].answer == "5"
    report = ps.report
    assert (report.n_rows, report.n_loaded, report.n_skipped) == (7, 2, 5)
    assert report.skipped == {
        "invalid JSON": 1,
        "missing question": 1,
        "no final answer": 1,
        "duplicate id": 1,
        "not an object": 1,
    }
    assert report.examples[0] == (1, report.examples[0][1])
    assert "line 2" in report.examples[0][1]
    assert [i for i, _ in report.examples] == [1, 2, 3, 4, 5]
    assert report.summary().startswith("bad bad.jsonl: 7 rows, 2 loaded, 5 skipped (")


def test_no_usable_row_names_file_and_reasons(tmp_path):
    rows = [{"question": "q", "answer": ""}, {"question": "r", "answer": None}]
    path = _write_jsonl(tmp_path / "empty.jsonl", rows)
    with pytest.raises(DatasetError, match=r"empty\.jsonl.*no final answer \(2 rows\)"):
        load_problems("file", data_path=path, fields={"question": "question", "answer": "answer"})
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"blank\.jsonl.*no rows"):
        load_problems("file", data_path=blank)


def test_named_dataset_on_wrong_file_is_an_error(tmp_path):
    _write_jsonl(tmp_path / "test.jsonl", [{"prompt": "q", "gold": "1"}])
    with pytest.raises(DatasetError, match=r"test\.jsonl.*missing question.*\['gold', 'prompt'\]"):
        load_problems("gsm8k", data_path=tmp_path, split="test")


def test_missing_mapped_column_names_file_field_and_columns(tmp_path):
    path = _write_jsonl(tmp_path / "m.jsonl", ROWS)
    with pytest.raises(DatasetError) as err:
        load_problems("file", data_path=path, fields={**MAPPING, "solution": "wrok"})
    message = str(err.value)
    assert str(path) in message and "solution (column 'wrok')" in message
    assert "['gold', 'key', 'lvl', 'prompt', 'work']" in message


def test_fields_validation(tmp_path):
    path = _write_jsonl(tmp_path / "m.jsonl", ROWS)
    with pytest.raises(DatasetError, match=r"unknown key\(s\) \['anwser'\]"):
        load_problems("file", data_path=path, fields={"question": "prompt", "anwser": "gold"})
    with pytest.raises(DatasetError, match="at least one of 'answer' or 'solution'"):
        load_problems("file", data_path=path, fields={"question": "prompt"})
    with pytest.raises(DatasetError, match="fields= is for dataset='file'"):
        load_problems("gsm8k", data_path=path, fields=MAPPING)


def test_unknown_dataset_suggests():
    with pytest.raises(DatasetError, match=r"unknown dataset 'gsm8' *\. Did you mean 'gsm8k'\?"):
        load_problems("gsm8")
    with pytest.raises(DatasetError, match="Valid names: gsm8k, math, prm800k"):
        load_problems("nothing-like-it")


def test_file_errors(tmp_path):
    with pytest.raises(DatasetError, match="needs data_path"):
        load_problems("file")
    with pytest.raises(DatasetError, match="does not exist"):
        load_problems("file", data_path=tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"unsupported file type '\.txt'"):
        load_problems("file", data_path=tmp_path / "x.txt")
    (tmp_path / "x.json").write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"Keys holding lists: \['rows'\]"):
        load_problems("file", data_path=tmp_path / "x.json")
    with pytest.raises(DatasetError, match="only used when loading from the Hugging Face hub"):
        load_problems("file", data_path=tmp_path / "x.json", revision="main")
    with pytest.raises(DatasetError, match="limit must be a positive integer"):
        load_problems("file", data_path=tmp_path / "x.json", limit=0)


def test_parquet_without_pyarrow(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DatasetError, match=r'pip install "seele-rl\[data\]"'):
        load_problems("file", data_path=path)


def test_directory_resolution(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": "x\n#### 3"}])
    ps = _load_quietly("gsm8k", data_path=tmp_path)  # default split of gsm8k: train
    assert ps.ids == ["gsm8k/train/0"] and ps[0].answer == "3"
    with pytest.raises(DatasetError, match=r"split 'test'.*looked for test\.jsonl.*train\.jsonl"):
        load_problems("gsm8k", data_path=tmp_path, split="test")
    # PRM800K never falls back to a MATH folder's train.jsonl (that is MATH train, 7500 rows).
    with pytest.raises(DatasetError, match=r"looked for train12k\.jsonl"):
        load_problems("prm800k", data_path=tmp_path)


def test_limit_stops_early(tmp_path):
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(10)]
    rows.insert(1, {"question": "no answer"})
    path = _write_jsonl(tmp_path / "l.jsonl", rows)
    with pytest.warns(DatasetWarning):
        ps = load_problems("file", data_path=path, limit=3)
    assert [p.answer for p in ps] == ["0", "1", "2"]
    assert ps.report.n_rows == 4 and ps.report.stopped_at_limit


# --------------------------------------------------------------------------------------------
# DeepMath (hand-built rows)
# --------------------------------------------------------------------------------------------


def _deepmath_rows() -> list[dict]:
    return [
        {
            "question": "Compute $\\int_0^1 2x\\,dx$.",
            "final_answer": "1",
            "difficulty": 3.0,
            "topic": "Mathematics -> Calculus",
            "r1_solution_1": "<think>\nHmm, let me think.\nWait...\n</think>\nThe integral is $1$.",
            "r1_solution_2": "Direct: $x^2|_0^1 = \\boxed{1}$.",
            "r1_solution_3": "<think>only thinking</think>",
        },
        {"question": "No answer here", "r1_solution_1": "x"},
    ]


def test_deepmath_rows(tmp_path):
    path = _write_jsonl(tmp_path / "train.jsonl", _deepmath_rows())
    with pytest.warns(DatasetWarning, match="no final answer: 1"):
        ps = load_problems("deepmath", data_path=tmp_path)
    p = ps[0]
    assert (p.id, p.answer, p.solution) == ("deepmath/train/0", "1", "The integral is $1$.")
    assert p.metadata["difficulty"] == 3.0 and p.metadata["topic"] == "Mathematics -> Calculus"
    with pytest.warns(DatasetWarning):
        second = load_problems("deepmath", data_path=path, solution_index=2)
        third = load_problems("deepmath", data_path=path, solution_index=3)
    assert second[0].solution == "Direct: $x^2|_0^1 = \\boxed{1}$."
    assert third[0].solution is None  # nothing after </think>: no hint source
    with pytest.raises(DatasetError, match="solution_index must be 1, 2 or 3"):
        load_problems("deepmath", data_path=path, solution_index=4)
    with pytest.raises(
        DatasetError, match=r"solution_index= is only for dataset\(s\) \['deepmath'\]"
    ):
        load_problems("gsm8k", data_path=path, solution_index=2)


# --------------------------------------------------------------------------------------------
# Hugging Face route (datasets.load_dataset on local files: the same code as the hub)
# --------------------------------------------------------------------------------------------

GSM_ROWS = [
    {"question": "Q0?", "answer": "a = <<2*3=6>>6 apples\n#### 6"},
    {"question": "Q1?", "answer": "b = <<1000+200=1200>>1,200\n#### 1,200"},
]


def test_hub_json_builder_and_local_folder(tmp_path):
    pytest.importorskip("datasets", reason="`datasets` (the seele-rl[data] extra) is not installed")
    folder = tmp_path / "mydata"
    folder.mkdir()
    _write_jsonl(folder / "test.jsonl", [{"q": "x?", "sol": "so \\boxed{4}", "n": 0}])
    cache = str(tmp_path / "cache")
    ps = _load_quietly(
        "hf:json",
        data_files={"test": str(folder / "test.jsonl")},
        split="test",
        fields={"question": "q", "solution": "sol"},
        cache_dir=cache,
    )
    assert (ps[0].id, ps[0].answer, ps.report.location) == ("json/test/0", "4", "json (test)")
    ps = _load_quietly(str(folder), split="test", fields={"question": "q", "solution": "sol"},
                       cache_dir=cache)  # fmt: skip
    assert ps.ids == ["mydata/test/0"] and ps[0].metadata["n"] == 0


def test_named_dataset_from_hub_uses_same_parser(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the `datasets` package is not installed")
    path = _write_jsonl(tmp_path / "gsm.jsonl", GSM_ROWS)
    aime_rows = [{"problem": f"Q{i}?", "answer": "6", "solution": "2*3=6."} for i in range(2)]
    aime_path = _write_jsonl(tmp_path / "aime.jsonl", aime_rows)
    real_load = datasets.load_dataset
    calls = []

    def fake_hub(path_or_id, name=None, split=None, **kwargs):
        calls.append((path_or_id, name, split, kwargs))
        source = aime_path if "aime" in path_or_id else path
        return real_load("json", data_files=str(source), split="train", cache_dir=str(tmp_path))

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    from_hub = _load_quietly("gsm8k", split="test", revision="abc")
    from_file = _load_quietly("gsm8k", data_path=path, split="test")
    assert calls == [("openai/gsm8k", "main", "test", {"revision": "abc"})]
    assert [(p.id, p.question, p.answer, p.solution) for p in from_hub] == [
        (p.id, p.question, p.answer, p.solution) for p in from_file
    ]
    assert from_hub[1].answer == "1200" and from_hub[1].solution == "b = 1,200"
    assert from_hub.report.location == "openai/gsm8k (test)"
    # Evaluation sets map our "test" split to the hub's split name.
    calls.clear()
    aime = _load_quietly("aime24")
    assert calls[0][:3] == ("HuggingFaceH4/aime_2024", None, "train")
    assert aime.ids == ["aime24/test/0", "aime24/test/1"]


def test_hub_failure_is_wrapped(monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the `datasets` package is not installed")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DatasetError, match=r"ConnectionError.*pass data_path=") as err:
        load_problems("gsm8k")
    assert isinstance(err.value.__cause__, ConnectionError)


def test_hub_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(
        DatasetError,
        match=r'needs the `datasets` package: pip install "seele-rl\[data\]", or pass data_path=',
    ):
        load_problems("math500")
    with pytest.raises(DatasetError, match="data_path= is not used with the hub id"):
        load_problems("hf:json", data_path="x.jsonl")


# --------------------------------------------------------------------------------------------
# ProblemSet and LoadReport
# --------------------------------------------------------------------------------------------


def test_problem_set_lookup_and_errors():
    ps = ProblemSet([Problem(id=f"gsm8k/test/{i}", question="q", answer=str(i)) for i in range(3)])
    assert ps.get("gsm8k/test/2").answer == "2" and ps.ids[0] == "gsm8k/test/0"
    assert "gsm8k/test/1" in ps and ps[0] in ps and "gsm8k/test/9" not in ps
    assert isinstance(ps[1:], ProblemSet) and ps[1:].ids == ["gsm8k/test/1", "gsm8k/test/2"]
    assert ps.report.summary() == "custom <memory>: 3 rows, 3 loaded, 0 skipped"
    with pytest.raises(KeyError):
        ps.get("gsm8k/tset/1")
    with pytest.raises(UnknownProblemError, match=r"did you mean 'gsm8k/test/1'"):
        ps.get("gsm8k/tset/1")
    with pytest.raises(DatasetError, match="ids look like 'gsm8k/test/0'"):
        ps.get("zzzzzz")
    with pytest.raises(DatasetError, match="duplicate problem id 'a'"):
        ProblemSet([Problem(id="a", question="q", answer="1")] * 2)
    with pytest.raises(DatasetError, match="is a dict, not a Problem"):
        ProblemSet([{"id": "a"}])


def test_report_summary_and_examples():
    report = LoadReport("gsm8k", "/data/gsm8k/test.jsonl", n_rows=3, n_loaded=1)
    for i in range(7):
        report.skip(i, "duplicate id" if i % 2 else "missing question", f"detail {i}")
    assert report.n_skipped == 7 and len(report.examples) == 5
    assert report.summary().startswith(
        "gsm8k test.jsonl: 3 rows, 1 loaded, 7 skipped (missing question: 4, duplicate id: 3; "
        "first: row 0: detail 0"
    )


# --------------------------------------------------------------------------------------------
# Pure cleaning helpers (tables of input -> expected, checked by hand)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{5}$", "5"),
        (r"\boxed{1} then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\fbox{x^{2}}", "x^{2}"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"$\boxed 5$", "5"),
        (r"\boxed{3} and a broken \boxed{4", "3"),
        (r"\boxed{}", None),
        (r"\boxedtext{3}", None),
        ("nothing", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("worked", "solution", "answer"),
    [
        ("a <<1+1=2>>2 b\n#### 2", "a 2 b", "2"),
        ("x = $<<1000*2=2000>>2,000.\n#### 2,000", "x = $2,000.", "2000"),
        ("2 < 3 and 4 > 1\n#### -1.5", "2 < 3 and 4 > 1", "-1.5"),
        ("no final line", "no final line", None),
        ("list\n#### 1,3", "list", "1,3"),
    ],
)
def test_clean_gsm8k(worked, solution, answer):
    assert clean_gsm8k(worked) == (solution, answer)


@pytest.mark.parametrize(
    ("value", "text"),
    [(27.0, "27"), (0.5, "0.5"), (-1.0, "-1"), (3, "3"), ("27.00", "27"), ("1.50", "1.50")],
)
def test_format_number(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("$2$", "2"), ("$69$,$84$", "69, 84"), ("1,3,5", "1,3,5"), ("$221,$8$", "$221,$8$")],
)
def test_strip_math_delimiters(answer, expected):
    assert strip_math_delimiters(answer) == expected


def test_after_think_and_signatures():
    assert after_think("<think>a</think>\n b ") == "b"
    assert after_think("no tags") == "no tags"
    text = (
        "By Furaken\nStep $1$.\n~Furaken\n"
        "Second $x$. -sepehr2010\n"
        "Third:\n- 10^4 \\left( a \\right)\n-Benedict T (countmath1)\n"
        "Fourth ends $\\boxed{1}$. ~akliu\n"
        "- [user](https://example.org)\nLast"
    )
    assert split_signed_solutions(text) == [
        "Step $1$.",
        "Second $x$.",
        "Third:\n- 10^4 \\left( a \\right)",
        "Fourth ends $\\boxed{1}$.",
        "Last",
    ]
    assert split_signed_solutions("By symmetry, $x=1$.") == ["By symmetry, $x=1$."]


# -- issue 15: step lists, another dataset's layout, split in ids ---------------------------------

STEPS = [
    "Janet's ducks lay 16 eggs; she eats 3 and bakes 4.",
    "That leaves 16 - 3 - 4 = 9 eggs.\nShe sells each for $2.",
    "9 * 2 = 18, so she makes \\boxed{18} dollars.",
]
STEP_ROWS = [{"problem": "How much does Janet make?", "steps": STEPS, "answer": "18"}]


def _steps_back(problem: Problem) -> list[str]:
    from seele_env.hints import split_units

    units = split_units(problem.solution, "steps")
    return [re.sub(r"^Step \d+: ", "", piece).rstrip("\n") for piece in units.pieces]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_solution_given_as_a_list_of_steps_gives_those_steps(tmp_path, fmt):
    """Regression: a JSON array of steps was loaded as the repr of the list, one hint unit."""
    path = tmp_path / f"steps.{fmt}"
    if fmt == "jsonl":
        _write_jsonl(path, STEP_ROWS)
    elif fmt == "json":
        path.write_text(json.dumps(STEP_ROWS), encoding="utf-8")
    else:
        pa = pytest.importorskip("pyarrow", reason="pyarrow is needed to write a parquet file")
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(STEP_ROWS), path)
    fields = {"question": "problem", "solution": "steps", "answer": "answer"}
    (problem,) = _load_quietly("file", data_path=path, fields=fields)
    assert not problem.solution.startswith("[")  # not the repr of the list
    assert _steps_back(problem) == STEPS
    (no_answer,) = _load_quietly(
        "file", data_path=path, fields={"question": "problem", "solution": "steps"}
    )
    assert no_answer.answer == "18"  # the last box of the joined steps


def test_hub_rows_with_a_list_of_steps(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="the `datasets` package is not installed")
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(STEP_ROWS)
    )
    (problem,) = _load_quietly(
        "org/steps", fields={"question": "problem", "solution": "steps", "answer": "answer"}
    )
    assert _steps_back(problem) == STEPS


def test_join_steps_keeps_existing_numbering_and_drops_blank_steps():
    from seele_env.loaders.cleaning import join_steps

    assert join_steps(["Step 1: a.", "Step 2: b."]) == "Step 1: a.\nStep 2: b."
    assert join_steps(["a.", " ", None, 7]) == "Step 1: a.\nStep 2: 7"
    assert join_steps([]) is None


@needs_shared
def test_a_file_in_another_datasets_layout_is_refused():
    """Regression: math500 on the GSM8K test file gave 1,319 problems whose gold answers were
    whole worked solutions."""
    with pytest.raises(DatasetError, match=r"1319 of 1319 gold answers are worked solutions.*"
                       r"math500 expects.*load_problems\('gsm8k'"):  # fmt: skip
        load_problems("math500", data_path=SHARED / "gsm8k" / "test.jsonl")


def test_worked_solutions_as_answers_are_refused_in_generic_files(tmp_path):
    worked = "First we add 2 and 3. That gives 5 apples. Then we double it to get ten apples total."
    path = _write_jsonl(tmp_path / "mine.jsonl", [{"question": f"q{i}", "answer": worked}
                                                  for i in range(3)])  # fmt: skip
    with pytest.raises(DatasetError, match=r"3 of 3 gold answers are worked solutions.*fields="):
        load_problems("file", data_path=path)


@needs_shared
def test_ids_carry_the_split_of_the_file_given():
    """Regression: a test file given directly got ids 'gsm8k/train/N'."""
    ps = _load_quietly("gsm8k", data_path=SHARED / "gsm8k" / "test.jsonl", limit=2)
    assert ps.ids == ["gsm8k/test/0", "gsm8k/test/1"]
    assert _load_quietly("gsm8k", data_path=SHARED / "gsm8k" / "test.jsonl", split="dev",
                         limit=1).ids == ["gsm8k/dev/0"]  # fmt: skip


def test_generic_file_named_after_a_split(tmp_path):
    path = _write_jsonl(tmp_path / "test.jsonl", [{"question": "q", "answer": "1"}])
    assert _load_quietly("file", data_path=path).ids == ["test/test/0"]
