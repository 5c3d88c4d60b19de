"""``seele bench scaling``: the grid matches rollouts per problem; points are timed and compared."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.bench import scaling  # noqa: E402
from seele_agents.cli import main  # noqa: E402


def test_grid_varies_one_thing_and_keeps_the_rollout_count():
    grid = scaling.default_grid(prompts=8, rollouts=32, tokens=64)
    assert all(p.rounds * p.group_size == 32 for p in grid)  # the same rollouts per problem
    assert [p.rounds for p in grid if p.axis == "rounds"] == [1, 1, 2, 4, 8]
    assert {p.prompts for p in grid if p.axis == "batch"} == {4, 16}
    assert {p.max_new_tokens for p in grid if p.axis == "length"} == {32, 128}
    for p in grid:  # outside its axis, a point keeps the base values
        assert p.prompts == 8 or p.axis == "batch"
        assert p.max_new_tokens == 64 or p.axis == "length"
        assert (p.rounds == 1) == (p.curriculum == "none") or p.axis == "rounds"
    assert grid[0].label == "GRPO P=8 m=1 n=32 T=64"


def test_points_are_timed_against_their_grpo_twin():
    points = [
        scaling.Point("rounds", "none", 2, 1, 4, 6),
        scaling.Point("rounds", "seele", 2, 2, 2, 6),
    ]
    rows = scaling.run_scaling(points, steps=1, echo=lambda *_: None)
    grpo, seele = rows
    assert grpo["vs_grpo"] == 1.0
    assert seele["vs_grpo"] == pytest.approx(seele["step_s"] / grpo["step_s"])
    for row in rows:
        assert set(row["phases_s"]) == set(scaling.OUR_PHASES)
        assert 0 < row["completion_tokens_mean"] <= 6
        assert row["generated_tokens"] == pytest.approx(row["completion_tokens_mean"] * 2 * 4)
    assert grpo["hint_rate_mean"] == 0.0 and seele["hint_rate_mean"] > 0.0  # SEELE hints
    table = scaling.format_scaling(rows)
    assert table.count("\n| rounds |") == 2 and "| SEELE P=2 m=2 n=2 T=6 |" in table


def test_command(tmp_path, capsys):
    path = tmp_path / "rows.json"
    assert main(["bench", "scaling", "--rollouts", "12"]) == 2
    assert "--rollouts 12 must be a multiple of 8" in capsys.readouterr().err
    argv = ["bench", "scaling", "--steps", "1", "--prompts", "2", "--rollouts", "8",
            "--max-new-tokens", "4", "--json", str(path)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(path.read_text())
    assert len(rows) == len(scaling.default_grid(2, 8, 4)) == 13
    assert "| length | GRPO P=2 m=1 n=8 T=8 |" in capsys.readouterr().out
