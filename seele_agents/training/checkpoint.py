"""Atomic checkpoints that resume a run exactly: weights, optimiser, scheduler, RNGs and state.

A checkpoint is a folder ``output_dir/checkpoints/step-00000010/``::

    model/          model.save_pretrained (safetensors; the adapter only for a peft model),
                    plus the tokenizer when given: ``from_pretrained`` loads it directly
    optimizer.pt    optimizer.state_dict()            (when an optimizer was given)
    scheduler.pt    scheduler.state_dict()            (when a scheduler was given)
    rng.pt          capture_rng_state(): python, numpy, torch CPU and CUDA generators
    extra.pt        ``extra``: tensors and plain containers, e.g. a torch.Generator's state
    state.json      {"format": 1, "step": 10, "state": {...}}: curriculum state, config, metrics

It is written under a hidden sibling (``.tmp-step-00000010``), every file is fsynced, and only
then is the folder renamed into place (:func:`seele_agents.files.atomic_folder`), so a crash
leaves either the whole checkpoint or none that :func:`latest_checkpoint` would pick.
:func:`load_checkpoint` copies the weights into the model object you already built (tied weights
included) and checks every tensor afterwards.

Example:
    >>> import tempfile, transformers
    >>> config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    >>> run = tempfile.TemporaryDirectory()
    >>> path = save_checkpoint(run.name, 10, model=transformers.LlamaForCausalLM(config),
    ...     state={"hint_rate": 0.5})
    >>> path.name, latest_checkpoint(run.name) == path
    ('step-00000010', True)
    >>> step, state, extra = load_checkpoint(path, model=transformers.LlamaForCausalLM(config))
    >>> step, state, extra
    (10, {'hint_rate': 0.5}, {})
    >>> run.cleanup()
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seele_agents.files import atomic_folder

if TYPE_CHECKING:  # torch is imported where it is used: finding checkpoints needs none
    import torch

CHECKPOINTS = "checkpoints"
"""Sub-folder of ``output_dir`` holding the checkpoints."""

FORMAT = 1
"""Version of the layout, stored in ``state.json``."""

_NAME = re.compile(r"step-(\d{8,})")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or does not fit the model it is loaded into."""


class RunExistsError(RuntimeError):
    """The output folder already holds a run and neither resume nor overwrite was asked for."""


def checkpoint_path(output_dir: str | os.PathLike[str], step: int) -> Path:
    """Where the checkpoint of ``step`` lives: ``output_dir/checkpoints/step-00000010``."""
    return Path(output_dir) / CHECKPOINTS / f"step-{step:08d}"


# --- random number generators -------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """The state of Python's ``random``, numpy's global RNG and torch's CPU and CUDA RNGs.

    Numpy's state is stored as tensors and plain values, so it loads with ``weights_only=True``.
    """
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generators captured by :func:`capture_rng_state`."""
    import torch

    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        if torch.cuda.is_available() and torch.cuda.device_count() >= len(state["cuda"]):
            torch.cuda.set_rng_state_all(state["cuda"])
        else:  # a GPU run resumed without (as many) GPUs cannot replay its sampling anyway
            warnings.warn(
                f"the checkpoint holds {len(state['cuda'])} CUDA RNG state(s) but this machine "
                f"has {torch.cuda.device_count() if torch.cuda.is_available() else 0} GPU(s); "
                "CUDA sampling will not repeat the original run.",
                stacklevel=2,
            )


# --- saving ---------------------------------------------------------------------------------------


def save_checkpoint(
    output_dir: str | os.PathLike[str],
    step: int,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    tokenizer: Any = None,
    state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of ``step`` atomically and return its folder.

    An existing checkpoint of the same step is replaced.

    Args:
        output_dir: The run's folder; checkpoints go to ``output_dir/checkpoints/``.
        step: The number of training steps done.
        model: Anything with ``save_pretrained(folder)`` (a transformers or peft model).
        optimizer: Its ``state_dict()`` is saved.
        scheduler: A learning-rate scheduler; its ``state_dict()`` is saved.
        tokenizer: Saved beside the model, so ``from_pretrained(folder / "model")`` works.
        state: JSON-safe run state (curriculum state, config, metrics).
        extra: Other objects for ``torch.save``; keep to tensors, numbers, strings and
            containers of them so :func:`load_checkpoint` can read them with ``weights_only``.

    Raises:
        TypeError: ``state`` is not JSON-serialisable (checked before anything is written).
    """
    import torch

    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step={step!r} must be an int >= 0.")
    state_text = json.dumps({"format": FORMAT, "step": step, "state": state or {}}, indent=1)
    with atomic_folder(checkpoint_path(output_dir, step)) as tmp:
        # safetensors is save_pretrained's default format in every supported transformers version
        model.save_pretrained(tmp / "model")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / "model")
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(capture_rng_state(), tmp / "rng.pt")
        torch.save(extra or {}, tmp / "extra.pt")
        (tmp / "state.json").write_text(state_text, encoding="utf-8")
    return checkpoint_path(output_dir, step)


# --- finding --------------------------------------------------------------------------------------


def _is_complete(path: Path) -> bool:
    return (path / "state.json").is_file() and (path / "model").is_dir()


def list_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The complete checkpoints of a run, oldest first (temporary folders are ignored)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found) if _is_complete(path)]


def latest_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step, or ``None`` when there is none."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def refuse_to_mix(output_dir: str | os.PathLike[str], overwrite: bool) -> None:
    """Raise :class:`RunExistsError` when a fresh run would write into an earlier run's folder.

    Raises:
        RunExistsError: ``output_dir`` holds a checkpoint and ``overwrite`` is false.
    """
    if not overwrite and latest_checkpoint(output_dir) is not None:
        raise RunExistsError(
            f"{output_dir} already holds checkpoints of an earlier run. Pass --resume latest to "
            "continue it, --overwrite to start again there, or --output-dir for a new folder."
        )


def prune_checkpoints(output_dir: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints; return the deleted folders."""
    if not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep={keep!r} must be an int >= 1 (the newest checkpoints to keep).")
    doomed = list_checkpoints(output_dir)[:-keep]
    for path in doomed:
        # Hide it first: a crash halfway through rmtree must not leave a folder that looks whole.
        hidden = path.with_name(f".old-{path.name}")
        shutil.rmtree(hidden, ignore_errors=True)  # a leftover of an earlier crash
        os.replace(path, hidden)
        shutil.rmtree(hidden)
    return doomed


FILES = ("optimizer.pt", "scheduler.pt", "rng.pt", "extra.pt")
"""The files besides ``state.json`` and ``model/`` that a training run's checkpoint holds."""

_FIX = (
    " The checkpoint is damaged (a full disk, a copy cut short?): resume from an earlier one, "
    "or with --resume latest, which skips damaged checkpoints."
)


def checkpoint_problem(
    path: str | os.PathLike[str], require: tuple[str, ...] = ("rng.pt", "extra.pt")
) -> str | None:
    """What makes the checkpoint at ``path`` unloadable (a missing, truncated or garbled file), or
    ``None`` when every file reads.

    Reads ``state.json``, the safetensors headers (each must cover its file) and each ``.pt``
    file's archive and pickle (memory-mapped: tensor data is not read, so a flipped bit inside a
    tensor goes unnoticed; there are no checksums). ``require``: the ``.pt`` files that must be
    there (:data:`FILES` for a training run's checkpoint); others are checked when present.
    """
    path = Path(path)
    if not path.is_dir():
        return "is not a folder"
    problem = _state_problem(path / "state.json")
    if problem is not None:
        return f"state.json {problem}"
    files = sorted((path / "model").glob("*.safetensors"))
    if not files:
        return "model/model.safetensors is missing (model/ holds no .safetensors file)"
    from safetensors import safe_open

    for file in files:
        try:
            with safe_open(file, framework="numpy"):  # parses the header, checks the size
                pass
        except Exception as error:  # any failure: unreadable
            return f"model/{file.name} cannot be read ({_brief(error)})"
    for name in FILES:
        file = path / name
        if not file.is_file():
            if name in require:
                return f"{name} is missing"
            continue
        import torch

        try:
            torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:
            return f"{name} cannot be read ({_brief(error)})"
    return None


def is_intact(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a checkpoint whose every file reads (:func:`checkpoint_problem`)."""
    return Path(path).is_dir() and checkpoint_problem(path) is None


def _state_problem(file: Path) -> str | None:
    if not file.is_file():
        return "is missing"
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        return f"is not valid JSON ({_brief(error)})"
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        return "has no step number"
    if not isinstance(meta.get("state"), dict):
        return "has no state"
    return None


def _brief(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:120]}{'...' if len(text) > 120 else ''}"


def resolve_resume(
    value: str | os.PathLike[str] | None,
    output_dir: str | os.PathLike[str],
    *,
    require: tuple[str, ...] = ("rng.pt", "extra.pt"),
    echo: Callable[[str], Any] | None = None,
    verify: bool = True,
) -> Path | None:
    """The checkpoint a ``resume`` setting means.

    Args:
        value: ``None`` (start afresh), ``"auto"`` (the newest intact checkpoint in
            ``output_dir``, or ``None`` if there is no checkpoint), ``"latest"`` (the same; an
            error if there is none) or the path of a checkpoint folder.
        output_dir: The run's folder.
        require: The ``.pt`` files a checkpoint must hold (see :func:`checkpoint_problem`).
        echo: Told of each damaged checkpoint ``"latest"``/``"auto"`` skips, and why
            (``warnings.warn`` when ``None``).
        verify: Read every file (:func:`checkpoint_problem`); ``False`` only checks that
            ``state.json`` and ``model/`` are there (no torch import: a quick early check).

    Raises:
        CheckpointError: ``"latest"`` without a checkpoint, every checkpoint damaged, or a named
            path that is not an intact checkpoint (the message names the file and the fix).
    """
    if value is None:
        return None

    def problem(path: Path) -> str | None:
        if verify:
            return checkpoint_problem(path, require)
        return None if _is_complete(path) else "state.json or model/ is missing"

    if str(value) not in ("auto", "latest"):
        path = Path(value)
        _require_complete(path)
        found = problem(path)
        if found is not None:
            raise CheckpointError(f"{path}: {found}.{_FIX}")
        return path
    skipped = []
    for path in reversed(_step_folders(output_dir)):
        found = problem(path)
        if found is None:
            return path
        skipped.append(f"{path.name} ({found})")
        if verify:
            message = f"resume: skipping the damaged checkpoint {path}: {found}"
            echo(message) if echo is not None else warnings.warn(message, stacklevel=2)
    if skipped:
        raise CheckpointError(
            f"resume={str(value)!r} found no intact checkpoint in {Path(output_dir) / CHECKPOINTS}"
            f": {'; '.join(skipped)}. Start afresh with --overwrite (or another --output-dir)."
        )
    if str(value) == "latest":
        raise CheckpointError(
            f"resume='latest' but {Path(output_dir) / CHECKPOINTS} holds no complete checkpoint; "
            "use resume='auto' to start afresh when there is none, or give the path of a "
            "checkpoint folder."
        )
    return None


def _require_complete(path: Path) -> None:
    if not path.is_dir():
        raise CheckpointError(
            f"no checkpoint at {path}; give a folder such as "
            f"{Path('runs/seele') / CHECKPOINTS / 'step-00000010'}, or 'latest'."
        )
    if not _is_complete(path):
        raise CheckpointError(
            f"{path} is not a complete checkpoint (it needs state.json and model/).{_FIX}"
        )


def _step_folders(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Every ``step-*`` folder of a run, complete or not, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found) if path.is_dir()]


# --- loading --------------------------------------------------------------------------------------


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    weights_only: bool = True,
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Load a checkpoint into existing objects, so that training continues exactly.

    The weights are copied into ``model`` in place and every tensor is compared with the file
    afterwards; then the optimizer, the scheduler and the RNGs are restored.

    Args:
        path: A checkpoint folder (see :func:`resolve_resume`).
        model: The model to load into, built like the saved one (a peft model gets its
            adapter); ``None``: the weights are left to the caller (:func:`load_weights`).
        optimizer: Restored from ``optimizer.pt``; it must have been saved.
        scheduler: Restored from ``scheduler.pt``; it must have been saved.
        restore_rng: Restore the Python, numpy and torch generators.
        weights_only: Read ``extra.pt`` with torch's safe loader; set ``False`` only for a
            checkpoint you trust whose ``extra`` holds arbitrary Python objects.

    Returns:
        ``(step, state, extra)``: the step saved, ``state`` as saved, ``extra`` as saved.

    Raises:
        CheckpointError: A missing or incomplete checkpoint, or one that does not fit ``model``
            (other keys, shapes or dtypes), ``optimizer`` or ``scheduler``.
    """
    path = Path(path)
    _require_complete(path)
    problem = _state_problem(path / "state.json")
    if problem is not None:
        raise CheckpointError(f"{path / 'state.json'} {problem}{_FIX}")
    meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if meta.get("format", FORMAT) > FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {meta['format']}, newer than this seele reads "
            f"({FORMAT}); upgrade seele."
        )
    if model is not None:
        _load_weights(model, path / "model", path)
    for obj, name in ((optimizer, "optimizer"), (scheduler, "scheduler")):
        if obj is not None:
            file = path / f"{name}.pt"
            if not file.is_file():
                raise CheckpointError(
                    f"{path} has no {file.name}: it was saved without {name} state; "
                    f"load it with {name}=None."
                )
            loaded = _read_pt(file, weights_only=True)
            try:
                obj.load_state_dict(loaded)
            except (KeyError, ValueError, RuntimeError) as error:
                raise CheckpointError(
                    f"{file} does not fit the {name} ({error}); build it as it was saved "
                    "(same parameters and parameter groups)."
                ) from error
    if restore_rng:
        restore_rng_state(_read_pt(path / "rng.pt", weights_only=True))
    extra = _read_pt(path / "extra.pt", weights_only=weights_only)
    return meta["step"], meta["state"], extra


def _read_pt(file: Path, *, weights_only: bool) -> Any:
    """``torch.load(file)``; a missing or unreadable file is a :class:`CheckpointError`."""
    import pickle

    import torch

    if not file.is_file():
        raise CheckpointError(f"{file} is missing.{_FIX}")
    try:
        return torch.load(file, map_location="cpu", weights_only=weights_only)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
        raise CheckpointError(f"{file} cannot be read ({_brief(error)}).{_FIX}") from error


def load_weights(path: str | os.PathLike[str], model: Any) -> None:
    """Copy only the weights of the checkpoint at ``path`` into ``model`` (checked after)."""
    path = Path(path)
    _require_complete(path)
    _load_weights(model, path / "model", path)


def _load_weights(model: Any, folder: Path, where: Path) -> None:
    import safetensors.torch
    import torch

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{where}: model/ holds no .safetensors file.")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(safetensors.torch.load_file(file))
        except Exception as error:  # SafetensorError and the like: the file is damaged
            raise CheckpointError(f"{file} cannot be read ({_brief(error)}).{_FIX}") from error
    if hasattr(model, "peft_config"):  # peft saved the adapter only; base weights stay as built
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        sources = _match(get_peft_model_state_dict(model), tensors, where)
        set_peft_model_state_dict(model, tensors)
        loaded = get_peft_model_state_dict(model)
    else:
        sources = _match(model.state_dict(), tensors, where)
        with torch.no_grad():
            for key, target in model.state_dict().items():
                target.copy_(tensors[sources[key]])
        loaded = model.state_dict()
    for key, source in sources.items():
        if not torch.equal(loaded[key], tensors[source].to(loaded[key].device)):
            raise CheckpointError(f"{where}: {key} differs from the checkpoint after loading.")


def _match(
    expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], where: Path
) -> dict[str, str]:
    """For each model key, the checkpoint key to read it from: itself, or the weight it is tied to
    (``save_pretrained`` keeps one copy of tied weights, e.g. the embedding for the LM head)."""
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"{where}: the checkpoint has {len(unexpected)} weight(s) the model lacks, e.g. "
            f"{unexpected[:3]}; build the model as it was saved (architecture, LoRA settings)."
        )

    def storage(t: torch.Tensor) -> tuple[Any, ...]:
        return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())

    saved_by_storage = {storage(expected[key]): key for key in tensors}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for key, target in expected.items():
        source = key if key in tensors else saved_by_storage.get(storage(target))
        if source is None:
            problems.append(f"{key} is missing")
            continue
        saved = tensors[source]
        if saved.shape != target.shape:
            problems.append(
                f"{key} has shape {list(saved.shape)}, in the model {list(target.shape)}"
            )
        elif saved.dtype != target.dtype:
            problems.append(f"{key} is {saved.dtype}, in the model {target.dtype}")
        sources[key] = source
    if problems:
        raise CheckpointError(
            f"{where} does not fit the model: {'; '.join(problems[:3])}"
            f"{f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''}. Build the model "
            "as it was saved (same architecture, dtype and LoRA settings)."
        )
    return sources
