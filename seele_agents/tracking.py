"""Where metrics go: a JSONL file always, TensorBoard / trackio / Weights & Biases on request.

Every record is one flat dict of namespaced scalars (``reward/mean``, ``loss/policy``, ...)
with its training ``step``; docs/training.md lists every metric once.

Example:
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with MetricsLogger(folder) as logger:
    ...     logger.log(1, {"reward/mean": 0.5})
    >>> json.loads((folder / "metrics.jsonl").read_text())
    {'step': 1, 'reward/mean': 0.5}
"""

from __future__ import annotations

import importlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any


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
            so the file holds one record per step; a torn last line (a write cut short) too.
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
        if resume_step is not None:
            _write_lines(self.path, _up_to(read_metrics(self.path, echo=echo), resume_step))
        elif self.path.exists():
            self.path.unlink()
        self._file = self.path.open("a", encoding="utf-8")
        self._writers: list[Any] = []
        if tensorboard:
            module = _require("torch.utils.tensorboard", "tensorboard")
            self._writers.append(
                _TensorBoard(module.SummaryWriter(str(self.folder / "tensorboard")))
            )
        if wandb:
            self._writers.append(_require("wandb", "wandb").init(project=project, config=config))
        if trackio:
            self._writers.append(_Trackio(_require("trackio", "trackio"), project, config))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append one record (non-finite values are written as ``null``)."""
        record = {"step": step, **{k: _finite(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for writer in self._writers:
            writer.log(
                {k: v for k, v in record.items() if k != "step" and v is not None}, step=step
            )

    def close(self) -> None:
        """Flush and close every destination."""
        self._file.close()
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


def _up_to(records: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The records before ``step``, and the first at ``step`` (its training record)."""
    kept = [r for r in records if r.get("step", 0) < step]
    at_step = [r for r in records if r.get("step", 0) == step]
    return kept + at_step[:1]


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


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

    def close(self) -> None:
        self.writer.close()


class _Trackio:
    def __init__(self, module: Any, project: str, config: dict[str, Any] | None) -> None:
        self.module = module
        module.init(project=project, config=config)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.module.log(metrics, step=step)

    def finish(self) -> None:
        self.module.finish()
