"""Training curves: reward, hint rate and held-out accuracy against the training step.

Example:
    >>> import tempfile, pathlib
    >>> records = [{"step": 0, "eval/accuracy": 0.1},
    ...            {"step": 1, "reward/mean": 0.4, "curriculum/hint_rate": 0.6},
    ...            {"step": 2, "reward/mean": 0.5, "eval/accuracy": 0.2}]
    >>> path = plot_training(records, pathlib.Path(tempfile.mkdtemp()) / "training.png")
    >>> path.stat().st_size > 0
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PANELS = (
    ("reward/mean", "training reward (with hints)"),
    ("curriculum/hint_rate", "mean hint rate"),
    ("eval/accuracy", "held-out accuracy (no hint, greedy)"),
)


def plot_training(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write a PNG with one panel per metric in :data:`PANELS` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.2))
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 12 else None, markersize=4)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
