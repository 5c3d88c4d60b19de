"""Row readers: JSONL / JSON / Parquet / CSV files and Hugging Face hub datasets.

Readers yield raw rows without judging them; a line that is not valid JSON is yielded as an
:class:`Unreadable` so the loader can count it instead of failing the whole file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seele_env.errors import DatasetError

__all__ = ["FILE_FORMATS", "INSTALL_HINT", "Unreadable", "read_file_rows", "read_hub_rows"]

INSTALL_HINT = 'pip install "seele-rl[data]"'


@dataclass(frozen=True)
class Unreadable:
    """A row that could not be decoded (e.g. a JSONL line that is not JSON)."""

    detail: str


def _read_jsonl(path: Path, split: str) -> Iterator[Any]:
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue  # blank lines (often a trailing one) are not rows
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                yield Unreadable(f"invalid JSON on line {line_number}: {err.msg}")


def _read_json(path: Path, split: str) -> Iterator[Any]:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path} is not valid JSON ({err.msg}, line {err.lineno}); if it holds one JSON "
            "object per line, rename it to .jsonl."
        ) from err
    if isinstance(data, list):
        yield from data
        return
    if isinstance(data, dict):
        # {"data": [...]} is the common wrapper; {"train": [...], "test": [...]} holds splits.
        for key in ("data", split):
            if isinstance(data.get(key), list):
                yield from data[key]
                return
        lists = sorted(k for k, v in data.items() if isinstance(v, list))
        raise DatasetError(
            f"{path}: a JSON file must hold a list of rows, {{'data': [...]}} or "
            f"{{'<split>': [...]}}; found no list under 'data' or {split!r}. "
            f"Keys holding lists: {lists or 'none'}; pass one of them as split=."
        )
    raise DatasetError(f"{path}: expected a JSON list or object, found {type(data).__name__}.")


def _read_csv(path: Path, split: str) -> Iterator[Any]:
    # Worked solutions (e.g. R1 traces) can exceed csv's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


def _read_parquet(path: Path, split: str) -> Iterator[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise DatasetError(f"reading {path} needs pyarrow: {INSTALL_HINT}.") from err
    # Batches keep memory flat on large files and let `limit` stop early.
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        yield from batch.to_pylist()


#: File extension -> reader. The format is chosen from the extension only.
FILE_FORMATS = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".parquet": _read_parquet,
    ".csv": _read_csv,
}


def read_file_rows(path: Path, split: str) -> Iterator[Any]:
    """Rows of a ``.jsonl``/``.json``/``.parquet``/``.csv`` file, in file order.

    Args:
        path: The file.
        split: For JSON files shaped ``{split: [...]}``, which list to read.

    Raises:
        DatasetError: Missing file, unsupported extension, or a JSON file of the wrong shape.
    """
    if not path.is_file():
        raise DatasetError(f"data file {path} does not exist.")
    reader = FILE_FORMATS.get(path.suffix.lower())
    if reader is None:
        raise DatasetError(
            f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(FILE_FORMATS)}."
        )
    return reader(path, split)


def read_hub_rows(
    hub_id: str, split: str, kwargs: Mapping[str, Any], *, local_hint: str
) -> Iterator[Mapping[str, Any]]:
    """Rows of a Hugging Face dataset, via ``datasets.load_dataset(hub_id, split=split, **kwargs)``.

    ``kwargs`` go to ``load_dataset`` unchanged (``name=`` for a config, ``revision=``,
    ``data_files=``, ``streaming=``...). Builder names such as ``"json"`` with ``data_files=``
    and local folders work too: it is the same call.

    Raises:
        DatasetError: ``datasets`` is not installed, or loading failed (the original error is
            chained and quoted; ``local_hint`` says how to load a local copy instead).
    """
    try:
        import datasets
    except ImportError as err:
        raise DatasetError(
            f"loading {hub_id!r} from the Hugging Face hub needs the `datasets` package: "
            f"{INSTALL_HINT}, or pass data_path= to load a local file. {local_hint}"
        ) from err
    try:
        dataset = datasets.load_dataset(hub_id, split=split, **kwargs)
    except Exception as err:  # network, auth, missing split/config...: all reported the same way
        raise DatasetError(
            f"could not load {hub_id!r} (split {split!r}) with datasets.load_dataset: "
            f"{type(err).__name__}: {err}. If the hub cannot be reached, download the data and "
            f"pass data_path=. {local_hint}"
        ) from err
    yield from dataset
