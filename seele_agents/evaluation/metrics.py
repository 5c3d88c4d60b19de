"""Evaluate a model on math sets: greedy pass@1, avg@k and unbiased pass@k, at pinned hint rates.

This module is the evaluation itself: the maths, the resumable loop and the reports. The
``seele eval`` command around it (settings, the output folder, loading models and data) is
:mod:`seele_agents.evaluation.command`; docs/evaluation.md describes both.

Every (dataset, hint rate) pair is a *cell*. Each problem of a cell gets one greedy completion
and, with ``samples=K``, K sampled ones; each completion is scored by the env (``reset`` with
the rate pinned, then ``step``: math-verify under the env's time limit). :func:`summarise`
turns a cell's per-problem records into its metrics:

* greedy pass@1: the fraction of problems whose greedy completion is right;
* avg@K: the mean correctness of the K samples (it equals the unbiased pass@1);
* pass@k for k = 1, 2, 4, ... and K: :func:`pass_at_k`, the unbiased estimator of Chen et al.
  (2021), averaged over problems.

:func:`evaluate_model` appends every batch's records to a ``results.jsonl`` and reads them back
when called again, so an interrupted evaluation generates only what is missing.

Only the standard library is imported at module level (``seele --help`` should not wait for
torch).

Example:
    >>> round(pass_at_k(5, 2, 2), 12)
    0.7
    >>> pass_at_k_ks(6)
    [1, 2, 4, 6]
    >>> records = [{"greedy": {"correct": True, "tokens": 10, "finish_reason": "stop"},
    ...             "samples": {"correct": [True, False], "tokens": [12, 8],
    ...                         "finish_reasons": ["stop", "length"]},
    ...             "realised_hint_rate": 0.0}] * 2
    >>> summary = summarise(records)
    >>> summary["greedy/pass@1"], summary["sampled/avg@2"], summary["sampled/pass@2"]
    (1.0, 0.5, 1.0)
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seele_agents.generation import Generator, Sample, SamplingParams
    from seele_env.env import MathHintEnv

RESULTS_FILE = "results.jsonl"
"""One JSON line per (dataset, hint rate, problem), appended after every batch."""
NO_SOLUTIONS = "n/a (no solutions)"
"""What a cell shows when no problem of the dataset has a reference solution to cut a hint from."""


class EvalError(ValueError):
    """Bad evaluation settings or an output folder that cannot be used; the message says the fix."""


# --- the maths ------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021).

    The probability that at least one of ``k`` samples drawn without replacement from the ``n``
    is correct: ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``,
    which never forms the (huge) binomial coefficients.

    Raises:
        ValueError: Unless ``0 <= c <= n`` and ``1 <= k <= n``.

    Example:
        >>> pass_at_k(10, 0, 4), pass_at_k(10, 7, 4), round(pass_at_k(4, 1, 2), 12)
        (0.0, 1.0, 0.5)
    """
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, c, k)):
        raise ValueError(f"pass_at_k needs ints, got n={n!r}, c={c!r}, k={k!r}.")
    if not 0 <= c <= n:
        raise ValueError(f"c={c} correct samples must be in 0..n={n}.")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in 1..n={n}: pass@k needs at least k samples.")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k_ks(samples: int) -> list[int]:
    """The k reported for ``samples`` samples per problem: 1, 2, 4, ... up to it, and it."""
    ks = [2**i for i in range(samples.bit_length()) if 2**i <= samples]
    return [*ks, samples] if samples and ks[-1] != samples else ks


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of one cell from its per-problem records (the lines of ``results.jsonl``).

    Returns:
        ``n`` (problems), ``greedy/pass@1``, ``hint_rate/realised`` (mean ``l/|y|``),
        ``tokens/mean`` and ``tokens/truncated_fraction`` over every completion (greedy and
        sampled; forced hint tokens not counted), and with K > 0 samples per problem
        ``sampled/avg@K`` and ``sampled/pass@k`` for k in :func:`pass_at_k_ks`. No records:
        ``{"n": 0}``.

    Raises:
        ValueError: The records do not all carry the same number of samples.
    """
    if not records:
        return {"n": 0}
    counts = {len(r["samples"]["correct"]) for r in records}
    if len(counts) > 1:
        raise ValueError(f"records carry different numbers of samples {sorted(counts)}.")
    k_max = counts.pop()
    tokens = [r["greedy"]["tokens"] for r in records]
    reasons = [r["greedy"]["finish_reason"] for r in records]
    for r in records:
        tokens += r["samples"]["tokens"]
        reasons += r["samples"]["finish_reasons"]
    summary: dict[str, Any] = {
        "n": len(records),
        "greedy/pass@1": _mean(r["greedy"]["correct"] for r in records),
        "hint_rate/realised": _mean(r["realised_hint_rate"] for r in records),
        "tokens/mean": _mean(tokens),
        "tokens/truncated_fraction": _mean(reason == "length" for reason in reasons),
    }
    if k_max:
        correct = [sum(map(bool, r["samples"]["correct"])) for r in records]
        summary[f"sampled/avg@{k_max}"] = _mean(c / k_max for c in correct)
        for k in pass_at_k_ks(k_max):
            summary[f"sampled/pass@{k}"] = _mean(pass_at_k(k_max, c, k) for c in correct)
    return summary


def _mean(values: Any) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


# --- the results file ---------------------------------------------------------------------------


def recover_records(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The records in ``path`` (none if it is missing), and a note when a partial last line
    (a run killed mid-write) was found; that line is cut off the file, so appending goes on
    from a clean line end.

    Raises:
        EvalError: A line before the last is not JSON (not something a kill produces).
    """
    if not path.is_file():
        return [], None
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, last = lines[:-1], lines[-1]  # `last` is b"" when the file ends with "\n"
    records, keep = [], 0
    for number, line in enumerate(complete, 1):
        try:
            if line.strip():
                records.append(json.loads(line))
        except ValueError:
            if number < len(complete) or last:
                raise EvalError(
                    f"line {number} of {path} is not valid JSON, so the file was not only cut "
                    "short by an interrupted run; pass --overwrite to start again."
                ) from None
            last = line + b"\n"  # an unparsable final line: treat it as partial too
            break
        keep += len(line) + 1
    if not last:
        return records, None
    with path.open("r+b") as f:
        f.truncate(keep)
        os.fsync(f.fileno())
    note = (f"ignored a partial last line of {path} ({len(last)} bytes, from an interrupted "
            "run); its problem is evaluated again")  # fmt: skip
    return records, note


def append_records(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Append records as JSON lines and force them to disk (``os.fsync``)."""
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


# --- the evaluation loop -------------------------------------------------------------------------


@dataclass
class Cell:
    """One (dataset, hint rate) pair: the problems evaluated in it, and those left out."""

    dataset: str
    hint_rate: float
    problem_ids: list[str]
    left_out: int = 0  # problems without a reference solution, at a rate > 0


@dataclass
class EvalResult:
    """What :func:`evaluate_model` found.

    Attributes:
        cells: One summary per cell in plan order: ``dataset``, ``hint_rate``, the
            :func:`summarise` metrics, ``left_out`` and, for a cell with nothing to evaluate,
            ``skipped`` (:data:`NO_SOLUTIONS`).
        records: Every cell's per-problem records (earlier runs' included), in plan order.
        notes: What was skipped, left out or recovered.
        generated: Problems generated by this call (the rest came from ``results_path``).
        samples: K, the sampled completions per problem.
    """

    cells: list[dict[str, Any]]
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    generated: int = 0
    samples: int = 0


def plan_cells(
    envs: Mapping[str, MathHintEnv], hint_rates: Sequence[float]
) -> tuple[list[Cell], list[str]]:
    """The cells, dataset by dataset and rate by rate, and notes on what cannot be hinted."""
    cells, notes = [], []
    for name, env in envs.items():
        ids = list(env.problem_ids)
        hintable = [pid for pid in ids if env.problems.get(pid).has_solution]
        for rate in hint_rates:
            chosen = ids if rate == 0 else hintable
            cells.append(Cell(name, float(rate), chosen, len(ids) - len(chosen)))
            if rate > 0 and not hintable:
                notes.append(f"{name} at hint rate {rate:g}: skipped, {NO_SOLUTIONS} (the set "
                             "has answers only; its rate-0 cell is evaluated)")  # fmt: skip
            elif rate > 0 and len(hintable) < len(ids):
                notes.append(f"{name} at hint rate {rate:g}: {len(ids) - len(hintable)} of "
                             f"{len(ids)} problems left out (no reference solution)")  # fmt: skip
    return cells, notes


def evaluate_model(
    generator: Generator,
    envs: Mapping[str, MathHintEnv],
    *,
    hint_rates: Sequence[float] = (0.0,),
    samples: int = 0,
    max_new_tokens: int = 1024,
    temperature: float = 0.6,
    top_p: float = 0.95,
    batch_size: int = 16,
    seed: int = 0,
    results_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
    echo: Callable[[str], Any] = print,
) -> EvalResult:
    """Greedy (and K sampled) completions for every problem of every cell, scored by the envs.

    Args:
        generator: Any :class:`~seele_agents.generation.Generator`.
        envs: Dataset name -> a :class:`~seele_env.env.MathHintEnv` over its problems.
        hint_rates: The rates to pin; problems without a reference solution are left out of
            cells with a rate > 0 (a note says so).
        samples: K sampled completions per problem besides the greedy one.
        max_new_tokens: Most tokens per completion.
        temperature: Temperature of the sampled completions.
        top_p: Nucleus mass of the sampled completions.
        batch_size: Problems per generation call.
        seed: The generator's sampling RNG (``generator.rng``, when it has one) is reseeded
            from ``seed`` and the batch's cell and problems before each batch, so a batch's
            samples do not depend on what ran before it: a resumed run samples what an
            uninterrupted one would have.
        results_path: A ``results.jsonl`` to resume from and append to after every batch.
        progress: Show a tqdm progress bar.
        echo: Where notes go.
    """
    from seele_agents.generation import SamplingParams

    greedy = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    sampled = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    path = Path(results_path) if results_path is not None else None
    earlier, note = recover_records(path) if path is not None else ([], None)
    done = {_key(r): r for r in earlier}
    cells, notes = plan_cells(envs, hint_rates)
    notes = [note, *notes] if note else notes
    for line in notes:
        echo(f"note: {line}")
    todo = [(c, [p for p in c.problem_ids if (c.dataset, c.hint_rate, p) not in done])
            for c in cells]  # fmt: skip
    total = sum(len(ids) for _, ids in todo)
    if earlier:
        echo(f"resuming: {len(done)} results found in {path}, {total} problems to go")
    bar = _progress_bar(total, progress)
    try:
        for cell, ids in todo:
            bar.set_description(f"{cell.dataset} @ {cell.hint_rate:g}")
            for start in range(0, len(ids), batch_size):
                batch = ids[start : start + batch_size]
                _reseed(generator, _batch_seed(seed, cell.dataset, cell.hint_rate, batch))
                new = evaluate_batch(generator, envs[cell.dataset], cell.dataset, batch,
                                     cell.hint_rate, samples, greedy, sampled)  # fmt: skip
                if path is not None:
                    append_records(path, new)
                done.update((_key(r), r) for r in new)
                bar.update(len(batch))
    finally:
        bar.close()
    return _result(cells, done, notes, total, samples)


def evaluate_batch(
    generator: Generator,
    env: MathHintEnv,
    dataset: str,
    problem_ids: Sequence[str],
    hint_rate: float,
    samples: int,
    greedy: SamplingParams,
    sampled: SamplingParams,
) -> list[dict[str, Any]]:
    """One record per problem: two generation calls (greedy; all K samples of every problem)."""
    from seele_agents.training.rollout import _request

    options = [{"problem_id": pid, "hint_rate": hint_rate} for pid in problem_ids]
    resets = [env.reset(options=o) for o in options]
    requests = [_request(*reset) for reset in resets]
    greedy_out = _generate(generator, requests, greedy)
    sampled_out = _generate(generator, [q for q in requests for _ in range(samples)], sampled)
    records = []
    for i, (o, (_, info)) in enumerate(zip(options, resets, strict=True)):
        g = _score(env, o, greedy_out[i])
        ss = [_score(env, o, s) for s in sampled_out[i * samples : (i + 1) * samples]]
        records.append({
            "dataset": dataset, "hint_rate": hint_rate, "problem_id": o["problem_id"],
            "realised_hint_rate": info["hint_rate"], "hint_len": info["hint_len"],
            "n_units": info["n_units"], "answer": env.problems.get(o["problem_id"]).answer,
            "greedy": {**g, "text": greedy_out[i].text},
            "samples": {"correct": [s["correct"] for s in ss],
                        "tokens": [s["tokens"] for s in ss],
                        "finish_reasons": [s["finish_reason"] for s in ss]},
        })  # fmt: skip
    return records


def _generate(generator: Generator, requests: list[Any], params: SamplingParams) -> list[Sample]:
    if not requests:
        return []
    out = generator.generate(requests, params)
    if len(out) != len(requests):
        raise RuntimeError(
            f"{type(generator).__name__}.generate returned {len(out)} samples for "
            f"{len(requests)} requests; a generator must return one per request."
        )
    return out


def _score(env: MathHintEnv, options: dict[str, Any], sample: Sample) -> dict[str, Any]:
    env.reset(options=options)
    info = env.step(sample.text)[-1]
    return {
        "correct": bool(info["correct"]),
        "answer": info["extracted_answer"],
        "tokens": len(sample.completion_ids),
        "finish_reason": sample.finish_reason,
    }


def _key(record: Mapping[str, Any]) -> tuple[str, float, str]:
    return record["dataset"], float(record["hint_rate"]), record["problem_id"]


def _batch_seed(seed: int, dataset: str, hint_rate: float, ids: Sequence[str]) -> int:
    text = "\x00".join([dataset, repr(float(hint_rate)), *ids])
    return (seed * 2**32 + zlib.crc32(text.encode("utf-8"))) % 2**63


def _reseed(generator: Any, seed: int) -> None:
    manual_seed = getattr(getattr(generator, "rng", None), "manual_seed", None)
    if callable(manual_seed):
        manual_seed(seed)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="problem", dynamic_ncols=True)


def _result(
    cells: list[Cell], done: dict[Any, Any], notes: list[str], generated: int, samples: int
) -> EvalResult:
    summaries, records = [], []
    for cell in cells:
        rows = [done[(cell.dataset, cell.hint_rate, pid)] for pid in cell.problem_ids]
        summary = {"dataset": cell.dataset, "hint_rate": cell.hint_rate, **summarise(rows),
                   "left_out": cell.left_out}  # fmt: skip
        if not rows and cell.left_out:
            summary["skipped"] = NO_SOLUTIONS
        summaries.append(summary)
        records += rows
    return EvalResult(summaries, records, notes, generated, samples)


# --- reporting ------------------------------------------------------------------------------------


def format_table(cells: Sequence[Mapping[str, Any]], samples: int) -> str:
    """The cells as a markdown table (``results.md``). pass@1 of the samples is not a column:
    it equals avg@K."""
    ks = [k for k in pass_at_k_ks(samples) if k > 1]
    head = ["dataset", "n", "hint rate", "realised", "pass@1 (greedy)"]
    head += ([f"avg@{samples}"] if samples else []) + [f"pass@{k}" for k in ks]
    head += ["mean tokens", "truncated"]
    rows = [head, ["---"] * len(head)]
    for c in cells:
        row = [c["dataset"], str(c["n"]), f"{c['hint_rate']:g}"]
        if c.get("skipped"):
            rows.append(row + ["–", c["skipped"]] + ["–"] * (len(head) - 5))
            continue
        row += [f"{c['hint_rate/realised']:.3f}", f"{c['greedy/pass@1']:.3f}"]
        row += [f"{c[f'sampled/avg@{samples}']:.3f}"] if samples else []
        row += [f"{c[f'sampled/pass@{k}']:.3f}" for k in ks]
        row += [f"{c['tokens/mean']:.1f}", f"{c['tokens/truncated_fraction']:.2f}"]
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def format_curve(cells: Sequence[Mapping[str, Any]]) -> str:
    """Greedy pass@1 against hint rate, one line per dataset."""
    width = max(len(c["dataset"]) for c in cells)
    lines: dict[str, list[str]] = {}
    for c in cells:
        value = "n/a" if c.get("skipped") else f"{c['greedy/pass@1']:.3f}"
        lines.setdefault(c["dataset"], []).append(f"{c['hint_rate']:g}: {value}")
    return "accuracy vs hint rate (greedy pass@1):\n" + "".join(
        f"  {name:<{width}}  {'   '.join(points)}\n" for name, points in lines.items()
    )


def plot_hint_curve(
    cells: Sequence[Mapping[str, Any]], samples: int, path: str | os.PathLike[str]
) -> Path:
    """Accuracy against hint rate, one line per dataset (dashed: avg@K); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name in dict.fromkeys(c["dataset"] for c in cells):
        points = [c for c in cells if c["dataset"] == name and not c.get("skipped")]
        rates = [c["hint_rate"] for c in points]
        (line,) = ax.plot(rates, [c["greedy/pass@1"] for c in points], marker="o", label=name)
        if samples:
            ax.plot(rates, [c[f"sampled/avg@{samples}"] for c in points], linestyle="--",
                    marker=".", color=line.get_color(), label=f"{name} avg@{samples}")  # fmt: skip
    ax.set_xlabel("hint rate (share of the reference solution given)")
    ax.set_ylabel("accuracy (greedy pass@1)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
