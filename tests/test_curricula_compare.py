"""The controller benchmark: curricula on synthetic learners at a matched rollout budget."""

from __future__ import annotations

import json

import pytest

from seele_env.curricula.compare import (
    DEFAULT_CURRICULA,
    BenchConfig,
    format_table,
    main,
    run_benchmark,
)

SMALL = BenchConfig(num_problems=120, steps=6, batch_size=40, learn_scale=1.0, seed=3)


@pytest.fixture(scope="module")
def results():
    return {r.label: r for r in run_benchmark(SMALL)}


def test_every_curriculum_spends_the_same_budget(results) -> None:
    assert set(results) == {label for label, _, _ in DEFAULT_CURRICULA}
    budget = SMALL.steps * SMALL.batch_size * SMALL.num_rounds * SMALL.group_size
    assert {r.rollouts for r in results.values()} == {budget}
    for r in results.values():
        assert len(r.median_abs_error) == SMALL.num_rounds
        assert len(r.no_hint_accuracy) == SMALL.steps + 1


def test_the_adaptive_controllers_beat_no_hint(results) -> None:
    seele, none = results["seele"], results["none"]
    # Without hints the problems start far too hard: accuracy near 0, error near 0.5.
    assert none.median_abs_error[0] > 0.4
    assert seele.median_abs_error[-1] < 0.2 < none.median_abs_error[-1]
    assert seele.mixed_groups[-1] > 2 * none.mixed_groups[-1]
    # SEELE's later rounds are closer to the target than its first (the fit at work).
    assert seele.median_abs_error[-1] < seele.median_abs_error[0]
    assert seele.no_hint_accuracy[-1] > none.no_hint_accuracy[-1]


def test_the_benchmark_is_deterministic_per_seed() -> None:
    subset = DEFAULT_CURRICULA[:2]
    first = [r.median_abs_error for r in run_benchmark(SMALL, subset)]
    again = [r.median_abs_error for r in run_benchmark(SMALL, subset)]
    assert first == again


def test_table_lists_every_curriculum(results) -> None:
    table = format_table(SMALL, list(results.values()))
    for label in results:
        assert f"| {label} |" in table
    assert "units=tokens" in table


def test_command_writes_json_and_plot(tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (the dev extra)")
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["--units", "tokens", "steps", "--num-problems", "60", "--steps", "2",
            "--batch-size", "20", "--curricula", "seele", "none",
            "--json", str(out_json), "--plot", str(out_png)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out_json.read_text())
    assert set(report) == {"tokens", "steps"}
    assert [r["label"] for r in report["steps"]["results"]] == ["seele", "none"]
    for units in ("tokens", "steps"):
        png = tmp_path / f"r-{units}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| seele |" in capsys.readouterr().out


def test_command_rejects_unknown_curricula(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--curricula", "seel"])
    assert "unknown curricula ['seel']" in capsys.readouterr().err
