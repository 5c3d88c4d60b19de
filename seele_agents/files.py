"""Atomic writes: a reader (or a resumed run) sees the old file or folder or the whole new one.

:func:`write_atomic` writes one text file through a temporary sibling and a rename;
:func:`atomic_folder` yields a hidden temporary folder to fill and, once the block ends without
an error, flushes every file to disk and renames the folder into place (a crash leaves the old
folder or none, never half of one). Checkpoints, the warm-up's weights and every command's result
files are written through these two. Only the standard library is imported.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> write_atomic(root / "a" / "results.md", "done\\n")
    >>> (root / "a" / "results.md").read_text()
    'done\\n'
    >>> with atomic_folder(root / "weights") as tmp:
    ...     _ = (tmp / "model.bin").write_bytes(b"1")
    ...     tmp.name, (root / "weights").exists()
    ('.tmp-weights', False)
    >>> sorted(p.name for p in root.iterdir())
    ['a', 'weights']
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader (or a
    resumed run) sees the old file or the whole new one, never half of it; makes the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def atomic_folder(final: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder (``.tmp-<name>`` beside ``final``) to write into; when the block ends
    without an error every file is fsynced and the folder replaces ``final`` (an existing one is
    moved aside first, then deleted). On an error or an interrupt the temporary folder is
    removed and ``final`` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an earlier write that crashed
    try:
        tmp.mkdir()
        yield tmp
        _fsync_tree(tmp)
        _replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` and the folders themselves to disk."""
    for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
        if path.is_file():
            with path.open("rb+") as f:
                os.fsync(f.fileno())
        else:
            _fsync_dir(path)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # other systems cannot open a folder for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is first moved aside (a folder cannot be
    renamed over a non-empty one), then deleted."""
    old = final.with_name(f".old-{final.name}")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
