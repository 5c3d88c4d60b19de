"""``examples/custom_agent.py``: an outside agent on ``seele/SEELE-v0`` through reset/step only."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import seele_env  # noqa: F401  (registers the environments)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_agent.py"
LINE = re.compile(
    r"^episode (\d+) \| (\S+) \| round (\d+) \| hint (\d+)/(\d+) rate ([\d.]+) \| reward (\S+) \| "
    r"correct (True|False) \| accuracy ([\d.]+) \| mean hint rate ([\d.]+)$",
    re.MULTILINE,
)


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("custom_agent", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _LastInfo(gym.Wrapper[str, str, str, str]):
    """Keeps the last reset's info, so a fake generator can look up the problem in play."""

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        observation, self.info = self.env.reset(**kwargs)
        return observation, self.info


def test_tiny_model_run_prints_one_consistent_line_per_episode() -> None:
    pytest.importorskip("torch", reason="the tiny model needs torch")
    pytest.importorskip("transformers", reason="the example's generator is a transformers pipeline")
    args = ["--model", "tiny", "--episodes", "8", "--max-new-tokens", "16"]
    args += ["--group-size", "2", "--num-rounds", "2", "--seed", "0"]
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = LINE.findall(out.stdout)
    assert [int(r[0]) for r in rows] == list(range(1, 9)), out.stdout
    rewards = [float(r[6]) for r in rows]
    assert set(rewards) <= {0.0, 1.0}
    assert rewards == [float(r[7] == "True") for r in rows]  # no format bonus by default
    for i, row in enumerate(rows):  # running summaries
        assert float(row[8]) == pytest.approx(sum(rewards[: i + 1]) / (i + 1), abs=5e-4)
        rates = [int(r[3]) / int(r[4]) for r in rows[: i + 1]]
        assert float(row[9]) == pytest.approx(sum(rates) / len(rates), abs=5e-4)
    # Plain reset(): one problem per visit of m*n = 4 episodes, rounds of n = 2 episodes.
    assert [int(r[2]) for r in rows] == [1, 1, 2, 2, 1, 1, 2, 2]
    ids = [r[1] for r in rows]
    assert ids[:4] == [ids[0]] * 4 and ids[4:] == [ids[4]] * 4 and ids[0] != ids[4]
    for visit in (rows[:4], rows[4:]):
        hint_len, n_units = int(visit[0][3]), int(visit[0][4])
        assert float(visit[0][5]) == pytest.approx(hint_len / n_units, abs=5e-4)
        assert hint_len == n_units - 1  # SEELE's first visit: all but the last unit
        # Round 2's rate moves against round 1's accuracy, towards the target 0.5.
        accuracy_1 = (float(visit[0][6]) + float(visit[1][6])) / 2
        rate_1, rate_2 = float(visit[0][5]), float(visit[2][5])
        assert rate_2 >= rate_1 if accuracy_1 < 0.5 else rate_2 <= rate_1
    assert re.search(rf"^8 episodes: mean reward {sum(rewards) / 8:.3f}$", out.stdout, re.M)


@pytest.mark.parametrize("placement", ["response", "prompt"])
def test_the_loop_with_a_generator_that_boxes_the_gold_answer_earns_reward_1(
    placement: str, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load_example()
    env = _LastInfo(
        gym.make("seele/SEELE-v0", group_size=2, num_rounds=2, placement=placement, seed=0)
    )
    problems = env.unwrapped.problems

    def gold(observation: str) -> str:
        return f"So the answer is \\boxed{{{problems.get(env.info['problem_id']).answer}}}."

    records = example.run(env, gold, episodes=8, group_size=2)
    env.close()
    assert len(records) == 8 == len(LINE.findall(capsys.readouterr().out))
    for record in records:
        assert record["reward"] == 1.0 and record["correct"] is True
        assert record["extracted_answer"] == problems.get(record["problem_id"]).answer
        assert record["placement"] == placement and record["curriculum/name"] == "seele"
    # All right at round 1's rate, so SEELE lowers the rate for round 2 (towards accuracy 0.5).
    for visit in (records[:4], records[4:]):
        assert [r["curriculum/round"] for r in visit] == [1, 1, 2, 2]
        assert visit[0]["hint_len"] == visit[0]["n_units"] - 1
        assert visit[2]["hint_rate"] < visit[0]["hint_rate"]
