"""``load_problems``: the dataset registry, local path resolution and the shared loading loop."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seele_env.errors import DatasetError
from seele_env.loaders.cleaning import looks_like_worked_solution
from seele_env.loaders.parsers import GENERIC_FIELDS, PARSERS, RowContext, SkipRow
from seele_env.loaders.problem_set import LoadReport, ProblemSet
from seele_env.loaders.readers import FILE_FORMATS, Unreadable, read_file_rows, read_hub_rows
from seele_env.problems import Problem

__all__ = ["DATASETS", "DatasetSpec", "load_problems"]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load one named dataset.

    Attributes:
        name: The name passed to :func:`load_problems`.
        description: One line for humans (shown in errors and docs).
        parser: Key into :data:`~seele_env.loaders.parsers.PARSERS`.
        splits: Known splits; the first is the default.
        hub_id: Default Hugging Face source when no ``data_path`` is given.
        hub_config: Its config (``name=`` of ``load_dataset``), if any.
        hub_splits: Our split -> the hub's split name, where they differ.
        local_files: Split -> file names tried first in a ``data_path`` directory.
        generic_names: Whether ``{split}.jsonl`` (/.json/.parquet/.csv) is tried after
            ``local_files``; off where that name would pick the wrong data (PRM800K in a
            MATH folder, whose ``train.jsonl`` is MATH train).
        has_solutions: Whether rows carry worked solutions (i.e. hints are possible).
        options: Parser options accepted as keywords (e.g. ``solution_index``).
    """

    name: str
    description: str
    parser: str
    splits: tuple[str, ...]
    hub_id: str
    hub_config: str | None = None
    hub_splits: Mapping[str, str] = field(default_factory=dict)
    local_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    generic_names: bool = True
    has_solutions: bool = True
    options: frozenset[str] = frozenset()


_SPECS = [
    DatasetSpec("gsm8k", "GSM8K grade-school word problems", "gsm8k", ("train", "test"),
                "openai/gsm8k", hub_config="main"),
    DatasetSpec("math", "MATH competition problems (Hendrycks et al.)", "math", ("train", "test"),
                "DigitalLearningGmbH/MATH-lighteval"),
    DatasetSpec("prm800k", "MATH-12k: the PRM800K training split (MATH minus MATH-500)", "math",
                ("train",), "zzy1123/MATH_train_test_split",
                local_files={"train": ("train12k.jsonl",)}, generic_names=False),
    DatasetSpec("math500", "MATH-500, the PRM800K test split", "math", ("test",),
                "HuggingFaceH4/MATH-500"),
    DatasetSpec("deepmath", "DeepMath-103K with R1 solutions", "deepmath", ("train",),
                "zwhe99/DeepMath-103K", options=frozenset({"solution_index"})),
    DatasetSpec("olympiadbench", "OlympiadBench, English text-only maths (OE_TO_maths_en_COMP)",
                "olympiadbench", ("test",), "Hothan/OlympiadBench",
                hub_config="OE_TO_maths_en_COMP", hub_splits={"test": "train"}),
    DatasetSpec("aime24", "AIME 2024 (I + II) with AoPS solutions", "aime24", ("test",),
                "HuggingFaceH4/aime_2024", hub_splits={"test": "train"}),
    DatasetSpec("aime25", "AIME 2025 (I + II), answers only", "answer_only", ("test",),
                "math-ai/aime25", local_files={"test": ("test.fixed.jsonl",)},
                has_solutions=False),
    DatasetSpec("amc23", "AMC 12 2023, answers only", "answer_only", ("test",), "math-ai/amc23",
                has_solutions=False),
    DatasetSpec("minerva", "Minerva Math (MIT OCW STEM problems)", "math", ("test",),
                "math-ai/minervamath"),
]  # fmt: skip

#: Dataset name -> how to load it.
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
_OPTIONS = frozenset().union(*(spec.options for spec in _SPECS))
_FIELD_NAMES = ("question", "answer", "solution", "id")


def _unknown_dataset(name: str) -> DatasetError:
    valid = [*DATASETS, "file"]
    close = difflib.get_close_matches(name, valid, n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return DatasetError(
        f"unknown dataset {name!r}.{hint} Valid names: {', '.join(valid)}; or a Hugging Face "
        "hub id such as 'openai/gsm8k' or 'hf:json' (anything with '/' or the 'hf:' prefix)."
    )


def _resolve_local(spec: DatasetSpec, data_path: Path, split: str) -> Path:
    """The file to read: ``data_path`` itself, or the split's file inside that directory."""
    if data_path.is_file():
        return data_path
    if not data_path.is_dir():
        raise DatasetError(
            f"data_path {data_path} does not exist (expected a file or a directory)."
        )
    names = list(spec.local_files.get(split, ()))
    if spec.generic_names:
        names += [f"{split}{ext}" for ext in FILE_FORMATS]
    for name in names:
        if (data_path / name).is_file():
            return data_path / name
    present = sorted(p.name for p in data_path.iterdir() if p.suffix in FILE_FORMATS)
    raise DatasetError(
        f"no {spec.name} file for split {split!r} in {data_path}: looked for {', '.join(names)}; "
        f"found {', '.join(present) or 'no data files'}. Pass the file itself as data_path= "
        f"or another split= (known splits: {', '.join(spec.splits)})."
    )


def _field_candidates(fields: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    """Validate a user ``fields`` mapping; ``None`` means the auto-detected column names."""
    if fields is None:
        return dict(GENERIC_FIELDS)
    unknown = sorted(set(fields) - set(_FIELD_NAMES))
    if unknown:
        raise DatasetError(
            f"unknown key(s) {unknown} in fields=; valid keys are {list(_FIELD_NAMES)}, "
            "mapping our names to your columns, "
            "e.g. fields={'question': 'prompt', 'answer': 'gold'}."
        )
    if "question" not in fields or not ({"answer", "solution"} & set(fields)):
        raise DatasetError(
            f"fields={dict(fields)} must map 'question' and at least one of 'answer' or "
            "'solution' (the answer is then the solution's last \\boxed{})."
        )
    return {ours: (str(theirs),) for ours, theirs in fields.items()}


def _check_columns(
    where: str, candidates: Mapping[str, tuple[str, ...]], columns: set[str], explicit: bool
) -> None:
    """Fail when a mapped field matches no column of any row (a typo, or the wrong file).

    With an explicit ``fields`` mapping every mapped column must exist; with auto-detection a
    question column and an answer or solution column must.
    """
    if not columns:
        return  # no dict row at all: the no-usable-row error says more

    def absent(*names: str) -> bool:
        return not any(set(candidates.get(name, ())) & columns for name in names)

    groups = (
        [(name,) for name in candidates] if explicit else [("question",), ("answer", "solution")]
    )
    missing = [names for names in groups if absent(*names)]
    if missing:
        wanted = "; ".join(
            " or ".join(
                f"{name} (column {' or '.join(map(repr, candidates[name]))})" for name in names
            )
            for names in missing
        )
        raise DatasetError(
            f"{where}: no row has the column for {wanted}. Columns present: {sorted(columns)}. "
            "Pass fields={'question': ..., 'answer': ...} naming your columns."
        )


def _collect(
    rows: Iterable[Any], ctx: RowContext, parser_name: str, report: LoadReport, limit: int | None
) -> tuple[list[Problem], set[str]]:
    """Parse rows into problems, counting skipped rows in ``report``; also return the columns."""
    parse = PARSERS[parser_name]
    problems: list[Problem] = []
    seen: set[str] = set()
    columns: set[str] = set()
    for index, row in enumerate(rows):
        if limit is not None and len(problems) >= limit:
            report.stopped_at_limit = True
            break
        report.n_rows += 1
        if isinstance(row, Unreadable):
            report.skip(index, "invalid JSON", row.detail)
            continue
        if not isinstance(row, Mapping):
            report.skip(index, "not an object", f"row is a {type(row).__name__}, not an object")
            continue
        columns.update(row)
        try:
            problem = parse(row, index, ctx)
        except SkipRow as skip:
            report.skip(index, skip.reason, skip.detail)
            continue
        except (ValueError, TypeError, AttributeError) as err:  # a value of an unexpected type
            report.skip(index, "invalid value", f"{type(err).__name__}: {err}")
            continue
        if problem.id in seen:
            report.skip(index, "duplicate id", f"duplicate id {problem.id!r}")
            continue
        seen.add(problem.id)
        problems.append(problem)
    report.n_loaded = len(problems)
    return problems, columns


def load_problems(
    dataset: str | Any,
    *,
    data_path: str | os.PathLike[str] | Any | None = None,
    split: str | None = None,
    fields: Mapping[str, str] | None = None,
    limit: int | None = None,
    **hub_kwargs: Any,
) -> ProblemSet:
    """Load a math dataset as a :class:`ProblemSet`.

    Args:
        dataset: A name from :data:`DATASETS` (``"gsm8k"``, ``"math"``, ``"prm800k"``,
            ``"math500"``, ``"deepmath"``, ``"olympiadbench"``, ``"aime24"``, ``"aime25"``,
            ``"amc23"``, ``"minerva"``); ``"file"`` for any JSONL/JSON/Parquet/CSV file; or a
            Hugging Face hub id (contains ``"/"``, or prefixed ``"hf:"``, e.g. ``"hf:json"``);
            or a ``datasets.Dataset`` itself (the same as ``"file"`` with it as ``data_path``).
        data_path: For a named dataset: its file, or a directory holding ``{split}.jsonl`` (or
            .json/.parquet/.csv); when ``None`` the default hub copy is loaded. For ``"file"``:
            the file (required). Wherever a file is accepted, a loaded ``datasets.Dataset`` (or
            ``IterableDataset``) is too: its rows are read as the file's would be.
        split: Which split; default: the dataset's first split (``"train"`` for GSM8K, MATH,
            PRM800K and DeepMath, ``"test"`` for the evaluation sets, ``"train"`` otherwise).
        fields: For ``"file"`` and hub ids: our names (``question``, ``answer``, ``solution``,
            ``id``) -> the rows' column names. ``question`` and one of ``answer``/``solution``
            are required. Default: columns named ``question``/``problem``, ``answer``/
            ``final_answer``, ``solution`` and ``id``/``unique_id``/``idx``.
        limit: Keep only the first ``limit`` usable problems (reading stops there).
        **hub_kwargs: Passed to ``datasets.load_dataset`` (``revision=``, ``data_files=``,
            ``name=``...), except parser options: ``solution_index=1..3`` (DeepMath).

    Returns:
        The problems, with ``.report`` saying how many rows were read, kept and skipped.

    Raises:
        DatasetError: Unknown dataset or field name, missing file or column, no usable row,
            hub failure. Skipped rows are not errors: they are counted in the report and one
            :class:`~seele_env.loaders.DatasetWarning` is issued.

    Example:
        >>> ps = load_problems("gsm8k", data_path="data/gsm8k", split="test")  # doctest: +SKIP
        >>> ps.report.summary()  # doctest: +SKIP
        'gsm8k test.jsonl: 1319 rows, 1319 loaded, 0 skipped'
        >>> rows = load_problems("file", data_path="mine.csv",
        ...                      fields={"question": "prompt", "answer": "gold"})  # doctest: +SKIP
        >>> import datasets
        >>> ds = datasets.Dataset.from_list([{"problem": "What is 2 + 3?", "answer": "5"}])
        >>> load_problems(ds)[0].answer
        '5'
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be a positive integer or None, got {limit!r}.")
    if _dataset_object(dataset) is not None:  # load_problems(ds): rows of the object itself
        dataset, data_path = "file", dataset
    if not isinstance(dataset, str):
        raise DatasetError(
            f"dataset must be a name, a hub id or a datasets.Dataset, got "
            f"{type(dataset).__name__}: {dataset!r:.80}."
        )
    in_memory = _dataset_object(data_path)
    options = {key: hub_kwargs.pop(key) for key in list(hub_kwargs) if key in _OPTIONS}
    spec = DATASETS.get(dataset)
    is_hub = spec is None and ("/" in dataset or dataset.startswith("hf:"))
    if spec is None and dataset != "file" and not is_hub:
        raise _unknown_dataset(dataset)
    _check_options(spec, options)

    if split is None and in_memory is None and data_path is not None and Path(data_path).is_file():
        split = _split_of_file(Path(data_path))  # ids carry the split actually loaded
    if spec is not None:
        if fields is not None:
            raise DatasetError(
                f"fields= is for dataset='file' and hub ids; {spec.name!r} has a built-in parser. "
                "To map the columns yourself, use load_problems('file', data_path=..., fields=...)."
            )
        split = split or spec.splits[0]
        candidates: dict[str, tuple[str, ...]] = {}
        label, parser = spec.name, spec.parser
    else:
        split = split or "train"
        candidates = _field_candidates(fields)
        parser = "generic"

    if spec is not None and data_path is None:
        kwargs = {"name": spec.hub_config, **hub_kwargs} if spec.hub_config else dict(hub_kwargs)
        hub_split = spec.hub_splits.get(split, split)
        location = f"{spec.hub_id} ({hub_split})"
        rows: Iterable[Any] = read_hub_rows(
            spec.hub_id, hub_split, kwargs, local_hint=f"See docs/datasets.md for {spec.name}."
        )
    elif is_hub:
        if data_path is not None:
            raise DatasetError(
                f"data_path= is not used with the hub id {dataset!r}; pass data_files= or "
                "data_dir= (forwarded to datasets.load_dataset), or use dataset='file'."
            )
        hub_id = dataset.removeprefix("hf:")
        # A local folder given as "hub id" is named by its last component, not its full path.
        label = Path(hub_id).name if Path(hub_id).is_dir() else hub_id
        location = f"{hub_id} ({split})"
        rows = read_hub_rows(hub_id, split, hub_kwargs, local_hint="")
    elif in_memory is not None:
        if hub_kwargs:
            raise DatasetError(
                f"keyword argument(s) {sorted(hub_kwargs)} are only used when loading from the "
                "Hugging Face hub; a datasets.Dataset given as data_path is already loaded."
            )
        if spec is None:
            label = "dataset"
        location, rows = _dataset_rows(data_path, in_memory)
        if parser == "generic":
            _check_columns(location, candidates, _dataset_columns(data_path), fields is not None)
    else:
        if data_path is None:
            raise DatasetError(
                "dataset='file' needs data_path= (a .jsonl/.json/.parquet/.csv file)."
            )
        if hub_kwargs:
            raise DatasetError(
                f"keyword argument(s) {sorted(hub_kwargs)} are only used when loading from the "
                "Hugging Face hub (data_path=None); remove them or drop data_path."
            )
        path = Path(data_path)
        if spec is not None:
            path = _resolve_local(spec, path, split)
        elif path.is_dir():
            raise DatasetError(f"dataset='file' needs a file, but {path} is a directory.")
        if spec is None:
            label = path.stem
        location, rows = str(path), read_file_rows(path, split)

    report = LoadReport(dataset=label, location=location)
    ctx = RowContext(dataset=label, split=split, options=options, fields=candidates)
    problems, columns = _collect(rows, ctx, parser, report, limit)
    if parser == "generic":
        _check_columns(location, candidates, columns, explicit=fields is not None)
    if not problems:
        reasons = (
            ", ".join(f"{r} ({n} rows)" for r, n in report.skipped.items()) or "it has no rows"
        )
        raise DatasetError(
            f"no usable problem in {location} ({label}, split {split!r}): {reasons}. "
            f"Columns present: {sorted(columns) or 'none'}."
        )
    _check_answers_are_final(problems, label, location, spec)
    report.warn_if_skipped()
    return ProblemSet(problems, report)


def _dataset_object(value: object) -> str | None:
    """The class name of a ``datasets`` object (``"Dataset"``, ``"DatasetDict"``...), else
    ``None``; told by the class's module so that ``datasets`` need not be imported."""
    cls = type(value)
    return cls.__name__ if cls.__module__.split(".")[0] == "datasets" else None


def _dataset_rows(data: Any, kind: str) -> tuple[str, Iterable[Any]]:
    """Where to say the rows came from, and the rows of a loaded ``Dataset``."""
    if kind.endswith("Dict"):
        splits = list(data.keys())
        raise DatasetError(
            f"data_path is a datasets.{kind} with splits {splits}; pass one split, "
            f"e.g. data_path=ds[{splits[0]!r}]."
            if splits
            else f"data_path is an empty {kind}."
        )
    if not hasattr(data, "__iter__") or not hasattr(data, "column_names"):
        raise DatasetError(
            f"data_path is a datasets.{kind}, which is not a table of rows; pass a "
            "datasets.Dataset or IterableDataset."
        )
    size = f"{len(data)} rows" if kind == "Dataset" else "streamed"
    return f"datasets.{kind} ({size})", data


def _dataset_columns(data: Any) -> set[str]:
    """The column names a loaded dataset declares (empty when a stream does not know them)."""
    return set(getattr(data, "column_names", None) or ())


# File stems that name a split: ``test.jsonl``, ``test.fixed.jsonl``, ``validation.parquet``.
_SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "dev")


def _split_of_file(path: Path) -> str | None:
    """The split a file's name states (``test.jsonl`` -> ``"test"``), else ``None``."""
    stem = path.name.split(".", 1)[0].lower()
    return stem if stem in _SPLIT_NAMES else None


def _check_answers_are_final(
    problems: list[Problem], label: str, location: str, spec: DatasetSpec | None
) -> None:
    """Stop when most gold answers are worked solutions: the file has another dataset's layout
    (GSM8K's ``answer`` holds the whole solution), and every reward would be wrong."""
    worked = [p for p in problems if looks_like_worked_solution(p.answer)]
    if len(worked) * 2 <= len(problems):
        return
    example = worked[0].answer[:120].replace("\n", " ")
    gsm8k = any("####" in p.answer for p in worked)
    if spec is not None:
        expected = (
            f"{spec.name} expects rows with the question, a solution and a short final answer "
            f"(parser {spec.parser!r}; see docs/datasets.md)"
        )
    else:
        expected = "the answer column must hold a short final answer, not a worked solution"
    hint = (
        " It looks like GSM8K's layout (the final answer after '####'): load it with "
        "load_problems('gsm8k', data_path=...)."
        if gsm8k
        else " Map the worked solutions with fields={'solution': ...} and a short answer column "
        "with fields={'answer': ...}, or load the file with its own dataset name."
    )
    raise DatasetError(
        f"{location} ({label}): {len(worked)} of {len(problems)} gold answers are worked "
        f"solutions, not final answers (e.g. {example!r}); {expected}.{hint}"
    )


def _check_options(spec: DatasetSpec | None, options: Mapping[str, Any]) -> None:
    allowed = spec.options if spec is not None else frozenset()
    for key, value in options.items():
        if key not in allowed:
            users = [s.name for s in _SPECS if key in s.options]
            raise DatasetError(f"option {key}= is only for dataset(s) {users}.")
        if key == "solution_index" and value not in (1, 2, 3):
            raise DatasetError(
                f"solution_index must be 1, 2 or 3 (r1_solution_1..3), got {value!r}."
            )
