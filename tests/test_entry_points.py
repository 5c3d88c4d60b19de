"""The README's run command and the examples run, as a user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_python_m_seele_env_prints_the_accuracy_table() -> None:
    stdout = _run("-m", "seele_env", "--episodes", "40", "--rates", "0,1")
    rows = re.findall(r"^\s*([01]\.00) \|\s+([\d.]+) \| ([\d.]+)$", stdout, re.MULTILINE)
    assert [r[0] for r in rows] == ["0.00", "1.00"]
    # At rate 1 the observation holds the whole solution, so the last number is the answer.
    assert float(rows[1][1]) == 1.0 and float(rows[1][2]) == 1.0
    assert float(rows[0][2]) < 0.5


def test_agent_loop_example() -> None:
    stdout = _run("examples/agent_loop.py", "--num-envs", "2", "--steps", "5", "--hint-rate", "1")
    match = re.search(r"10 episodes on 'procedural': mean reward ([\d.]+), mean realised hint "
                      r"rate ([\d.]+)", stdout)  # fmt: skip
    assert match, stdout
    assert float(match.group(1)) == 1.0 and float(match.group(2)) == 1.0
