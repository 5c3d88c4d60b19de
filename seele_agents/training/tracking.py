"""Where metrics go: a JSONL file always, TensorBoard / trackio / Weights & Biases on request.

Every record is one flat dict of namespaced scalars (``reward/mean``, ``loss/policy``, ...)
with its training ``step``; docs/training.md lists every metric once. Tables of sample
completions (:mod:`seele_agents.training.samples`) go to ``samples.jsonl`` and the same trackers.

A resumed run continues the same W&B and trackio runs: their ids are stored in
``<folder>/trackers.json`` when the run starts, and handed back to them on resume.

Example:
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with MetricsLogger(folder) as logger:
    ...     logger.log(1, {"reward/mean": 0.5})
    >>> json.loads((folder / "metrics.jsonl").read_text())
    {'step': 1, 'reward/mean': 0.5}
"""

from __future__ import annotations

import html
import importlib
import json
import math
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from seele_agents.files import write_atomic

SAMPLES_FILE = "samples.jsonl"
TRACKERS_FILE = "trackers.json"


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"Logging to {extra} needs the '{module}' package: pip install {extra}"
        ) from error


class MetricsLogger:
    """Writes metrics to ``<folder>/metrics.jsonl`` and the trackers that are switched on.

    Args:
        folder: The run's output folder.
        tensorboard: Also write TensorBoard event files to ``<folder>/tensorboard``.
        wandb: Also log to Weights & Biases (``pip install wandb``; needs a login or
            ``WANDB_MODE=offline``).
        trackio: Also log to trackio (``pip install trackio``).
        project: Project name for W&B / trackio.
        config: The run's configuration, sent to W&B / trackio.
        resume_step: When resuming, JSONL records after this step's training record (from
            the interrupted run, or the final evaluation of a run being extended) are dropped,
            so the file holds one record per step, and sample rows after this step likewise;
            a torn last line (a write cut short) too. W&B and trackio continue the runs named
            in ``trackers.json``. ``None``: a fresh run (new tracker runs, no earlier files).
        echo: Told of a torn line dropped (``warnings.warn`` when ``None``).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        tensorboard: bool = False,
        wandb: bool = False,
        trackio: bool = False,
        project: str = "seele",
        config: dict[str, Any] | None = None,
        resume_step: int | None = None,
        echo: Any = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "metrics.jsonl"
        self.samples_path = self.folder / SAMPLES_FILE
        if resume_step is not None:
            _write_lines(self.path, _up_to(read_metrics(self.path, echo=echo), resume_step))
            if self.samples_path.exists():
                rows = read_metrics(self.samples_path, echo=echo)
                kept = [row for row in rows if row.get("step", 0) <= resume_step]
                _write_lines(self.samples_path, kept)
        else:
            self.path.unlink(missing_ok=True)
            self.samples_path.unlink(missing_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._samples: Any = None  # opened by the first table
        self._writers: list[Any] = []
        resuming = resume_step is not None
        ids = tracker_ids(self.folder, wandb=wandb, trackio=trackio, resume=resuming)
        if tensorboard:
            module = _require("torch.utils.tensorboard", "tensorboard")
            self._writers.append(
                _TensorBoard(module.SummaryWriter(str(self.folder / "tensorboard")))
            )
        if wandb:
            module = _require("wandb", "wandb")
            self._writers.append(_WandB(module, project, config, ids["wandb"], resuming, folder))
        if trackio:
            module = _require("trackio", "trackio")
            self._writers.append(_Trackio(module, project, config, ids["trackio"], resuming))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append one record (non-finite values are written as ``null``)."""
        record = {"step": step, **{k: _finite(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for writer in self._writers:
            writer.log(
                {k: v for k, v in record.items() if k != "step" and v is not None}, step=step
            )

    def log_samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Append a table of sample rows (:func:`seele_agents.training.samples.sample_rows`) to
        ``samples.jsonl``, one line per row, and send it to every tracker as ``samples``."""
        if not rows:
            return
        if self._samples is None:
            self._samples = self.samples_path.open("a", encoding="utf-8")
        self._samples.write("".join(json.dumps(row) + "\n" for row in rows))
        self._samples.flush()
        for writer in self._writers:
            writer.log_samples(rows, step=step)

    def close(self) -> None:
        """Flush and close every destination."""
        self._file.close()
        if self._samples is not None:
            self._samples.close()
        for writer in self._writers:
            finish = getattr(writer, "finish", None) or getattr(writer, "close", None)
            if finish is not None:
                finish()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_metrics(path: str | os.PathLike[str], *, echo: Any = None) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (empty if it does not exist).

    A last line that does not parse (a write cut short by a crash) is dropped and ``echo`` told
    (``warnings.warn`` when ``None``); a bad line elsewhere is a ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError as error:
            if number < len(lines):
                raise ValueError(f"{path}, line {number}, is not a JSON record: {error}") from None
            message = f"{path}: dropped its torn last line ({line[:60]!r}), cut short by a crash"
            echo(message) if echo is not None else warnings.warn(message, stacklevel=2)
    return records


def tracker_ids(
    folder: str | os.PathLike[str], *, wandb: bool, trackio: bool, resume: bool
) -> dict[str, str]:
    """The W&B run id and trackio run name of the run in ``folder``, kept in ``trackers.json``.

    A fresh run (``resume`` false) gets new ones; a resumed run the stored ones, and new ones
    for a tracker switched on only now. Random without touching Python's or numpy's RNGs,
    which a resumed run must find where the checkpoint left them.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> first = tracker_ids(folder, wandb=True, trackio=False, resume=False)
        >>> tracker_ids(folder, wandb=True, trackio=False, resume=True) == first
        True
        >>> tracker_ids(folder, wandb=True, trackio=False, resume=False) == first  # a new run
        False
    """
    path = Path(folder) / TRACKERS_FILE
    if not resume:
        path.unlink(missing_ok=True)  # an earlier run's, in a folder started afresh
    ids = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    wanted = {"wandb": wandb, "trackio": trackio}
    missing = [name for name, on in wanted.items() if on and name not in ids]
    for name in missing:
        ids[name] = f"seele-{secrets.token_hex(4)}"  # W&B ids: letters, digits, - and _
    if missing:
        write_atomic(path, json.dumps(ids, indent=1) + "\n")
    return ids


def _up_to(records: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The records before ``step``, and the first at ``step`` (its training record)."""
    kept = [r for r in records if r.get("step", 0) < step]
    at_step = [r for r in records if r.get("step", 0) == step]
    return kept + at_step[:1]


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def _finite(value: Any) -> Any:
    value = float(value)
    return value if math.isfinite(value) else None


class _TensorBoard:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        self.writer.add_text("samples", markdown_table(rows), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a Markdown table (what TensorBoard's text tab renders): ``|`` escaped, line
    breaks as ``<br>``, and ``<``, ``>``, ``&`` as entities so that text is never taken for HTML.

    Example:
        >>> print(markdown_table([{"hint": "a | b", "completion": "x < 1\\ny"}]))
        | hint | completion |
        |---|---|
        | a \\| b | x &lt; 1<br>y |
    """
    columns = list(rows[0])

    def cell(value: Any) -> str:
        text = html.escape(str(value), quote=False).replace("|", "\\|")
        return text.replace("\r\n", "\n").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


class _WandB:
    """A W&B run: resumed (same id) when the training run is, its files in the run's folder."""

    def __init__(
        self,
        module: Any,
        project: str,
        config: dict[str, Any] | None,
        run_id: str,
        resume: bool,
        folder: str | os.PathLike[str],
    ) -> None:
        self.module = module
        self.run = module.init(
            project=project, config=config, id=run_id, resume="allow" if resume else "never",
            dir=str(folder),
        )  # fmt: skip

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        self.run.log({"samples": _table(self.module, rows)}, step=step)

    def finish(self) -> None:
        self.run.finish()


def _table(module: Any, rows: list[dict[str, Any]]) -> Any:
    """Sample rows as a ``module.Table`` (wandb's and trackio's take the same arguments)."""
    columns = list(rows[0])
    return module.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])


class _Trackio:
    """A trackio run, named so that a resumed training run continues it."""

    def __init__(
        self, module: Any, project: str, config: dict[str, Any] | None, name: str, resume: bool
    ) -> None:
        self.module = module
        module.init(project=project, config=config, name=name,
                    resume="allow" if resume else "never")  # fmt: skip

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.module.log(metrics, step=step)

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        self.module.log({"samples": _table(self.module, rows)}, step=step)

    def finish(self) -> None:
        self.module.finish()


def progress_bar(
    enabled: bool, start: int, total: int, desc: str = "train", unit: str = "step"
) -> Any:
    """A tqdm bar from ``start`` to ``total`` (``None`` when not ``enabled``)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # An evaluation's bar goes once done: the lines printed after it say what it measured.
    leave = unit == "step"
    return tqdm(total=total, initial=start, desc=desc, unit=unit, dynamic_ncols=True, leave=leave)
