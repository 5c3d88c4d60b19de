"""``seele bench curricula``: statistics by hand, run configs, and the smoke preset end to end."""

from __future__ import annotations

import argparse
import json
import math

import pytest

pytest.importorskip("torch", reason="the benchmark trains models: needs the 'train' extra")

from seele_agents.bench import curricula as bench
from seele_agents.cli import main
from seele_agents.training.tracking import read_metrics


def test_mean_std_by_hand():
    assert bench.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sd = sqrt((1 + 0 + 1) / 2)
    assert bench.mean_std([0.25]) == (0.25, 0.0)
    mean, sd = bench.mean_std([])
    assert math.isnan(mean) and math.isnan(sd)


def test_paired_differences_use_common_seeds_only():
    a = {0: 0.5, 1: 0.7, 2: 0.9}
    b = {0: 0.4, 1: 0.4, 3: 0.0}
    mean, sd, n = bench.paired_differences(a, b)  # differences 0.1 and 0.3
    assert n == 2
    assert mean == pytest.approx(0.2) and sd == pytest.approx(math.sqrt(0.02))


def test_confidence_interval_by_hand():
    # Differences 0.1, 0.3, 0.4 (seed 3 is not in both): mean 0.26667, sd 0.15275,
    # t(0.975, 2) = 4.3027, half-width 4.3027 * 0.15275 / sqrt(3) = 0.37946.
    a = {0: 0.5, 1: 0.7, 2: 0.9, 3: 0.2}
    b = {0: 0.4, 1: 0.4, 2: 0.5}
    c = bench.paired_comparison(a, b)
    assert c["n"] == 3 and c["mean"] == pytest.approx(0.266667, abs=1e-6)
    assert c["sd"] == pytest.approx(0.152753, abs=1e-6)
    assert (c["low"], c["high"]) == (pytest.approx(-0.112793, abs=1e-5),
                                     pytest.approx(0.646126, abs=1e-5))  # fmt: skip
    # Five seeds, t(0.975, 4) = 2.7764: 0.1 ± 2.7764 * 0.05 / sqrt(5) = 0.1 ± 0.06208.
    low, high = bench.confidence_interval(0.1, 0.05, 5)
    assert (low, high) == (pytest.approx(0.03792, abs=1e-5), pytest.approx(0.16208, abs=1e-5))
    assert all(math.isnan(x) for x in bench.confidence_interval(0.1, 0.0, 1))  # no spread


def _args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(["--preset", "smoke", "--output-dir", str(tmp_path), *extra])


def test_run_configs_differ_only_in_curriculum_and_seed(tmp_path):
    spec = bench.spec_from_args(_args(tmp_path, "--curricula", "none", "uft", "questa"))
    start = tmp_path / "start"
    configs = {
        (label, seed): bench.run_config(spec, label, seed, start)
        for label in spec.curricula
        for seed in (0, 1)
    }
    assert configs["uft", 0].curriculum.options == {"horizon": spec.base.steps}
    assert configs["questa", 0].curriculum.options == {"boundaries": [spec.base.steps // 2]}
    for (label, seed), config in configs.items():
        assert config.model.name == str(start) and config.sft.steps == 0
        assert config.seed == seed and config.output_dir.endswith(f"{label}/seed-{seed}")
        assert (config.steps, config.problems_per_step) == (spec.base.steps, 2)
        assert (config.curriculum.num_rounds, config.curriculum.group_size) == (2, 2)


@pytest.mark.parametrize("name", sorted(bench.PRESETS))
def test_every_preset_is_a_valid_training_config(name):
    from seele_agents.config import load_config

    preset = bench.PRESETS[name]
    config = load_config(None, preset.overrides)
    assert config.steps >= 1 and preset.curricula and preset.seeds


def test_presets_are_checked():
    from seele_agents.config import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'seele'"):
        bench.Preset(description="x", overrides=[], curricula=["seel"], seeds=[0])
    with pytest.raises(ConfigError, match=r"^seeds: got \[1, 1\]; must be distinct"):
        bench.Preset(description="x", overrides=[], curricula=["none"], seeds=[1, 1])


def test_bad_options_are_named(tmp_path, capsys):
    assert main(["bench", "curricula", "--preset", "smoke", "--curricula", "seel"]) == 2
    assert "Did you mean 'seele'?" in capsys.readouterr().err
    assert main(["bench", "curricula", "--preset", "smoke", "--seeds", "1", "1"]) == 2
    assert "distinct seeds" in capsys.readouterr().err
    code = main(["bench", "curricula", "--preset", "smoke", "--set", "algo.betta=1",
                 "--output-dir", str(tmp_path)])  # fmt: skip
    assert code == 2 and "algo.beta" in capsys.readouterr().err


def test_smoke_preset_end_to_end_and_resume(tmp_path, capsys):
    argv = ["bench", "curricula", "--preset", "smoke", "--workers", "1",
            "--output-dir", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "seele minus plain GRPO" in printed and "| seele |" in printed
    results = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "hints.png").stat().st_size > 1000
    # header + 2 curricula, then the per-seed table: header + 2 curricula
    assert (tmp_path / "results.md").read_text().count("\n| ") == 6

    runs = {
        (label, seed): bench.run_folder(bench.spec_from_args(_args(tmp_path)), label, seed)
        for label in ("none", "seele")
        for seed in (0, 1)
    }
    rollouts, before = set(), set()
    for (label, _), folder in runs.items():
        records = [r for r in read_metrics(folder / "metrics.jsonl") if "rollout/episodes" in r]
        rollouts.add(sum(r["rollout/episodes"] for r in records))
        rates = [r["curriculum/hint_rate"] for r in records]
        assert (max(rates) == 0.0) if label == "none" else (rates[0] > 0.0)
        before.add(json.loads((folder / "bench_summary.json").read_text())["accuracy_before"])
    assert rollouts == {results["rollouts_per_run"]} == {2 * 2 * 2 * 2}  # matched budget
    assert len(before) == 1  # one start for every run
    for label, c in results["curricula"].items():
        after = [r["accuracy_after"] for r in c["runs"].values()]
        assert c["accuracy_after"] == pytest.approx(bench.mean_std(after))
        assert all(r["curve"][-1][0] == results["rollouts_per_run"] for r in c["runs"].values())
        assert len(c["runs"]["0"]["curve"]) == 3, label  # before, after step 1, after step 2

    # Interrupted benchmark: one run lost its summary, another its whole folder.
    (runs["seele", 1] / "bench_summary.json").unlink()
    import shutil

    shutil.rmtree(runs["none", 1])
    assert main(argv) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    resumed = json.loads((runs["seele", 1] / "bench_summary.json").read_text())
    assert resumed["resumed"] is True  # from its last checkpoint, not from scratch
    for seed in (0,):  # untouched runs are read back, not trained again
        for label in ("none", "seele"):
            assert (
                again["curricula"][label]["runs"][str(seed)]
                == results["curricula"][label]["runs"][str(seed)]
            )
    assert again["curricula"]["none"]["runs"]["1"]["accuracy_after"] == pytest.approx(
        results["curricula"]["none"]["runs"]["1"]["accuracy_after"]
    )  # retrained from the same start with the same seed: the same result


def test_two_workers_match_one(tmp_path):
    common = ["bench", "curricula", "--preset", "smoke", "--curricula", "seele", "--seeds", "0"]
    assert main([*common, "--workers", "1", "--output-dir", str(tmp_path / "one")]) == 0
    assert main([*common, "--workers", "2", "--output-dir", str(tmp_path / "two")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    a, b = one["curricula"]["seele"]["runs"]["0"], two["curricula"]["seele"]["runs"]["0"]
    assert a["curve"] == b["curve"] and a["train_accuracy"] == b["train_accuracy"]


@pytest.mark.slow
def test_every_curriculum_spends_the_same_rollouts(tmp_path):
    """All of LINEUP from one start: the same rollouts per run; the hints each one showed."""
    argv = ["bench", "curricula", "--preset", "smoke", "--seeds", "0", "--workers", "1",
            "--curricula", *bench.LINEUP, "--output-dir", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["curricula"]) == list(bench.LINEUP)
    spec = bench.spec_from_args(_args(tmp_path, "--curricula", *bench.LINEUP, "--seeds", "0"))
    counts = {}
    for label in bench.LINEUP:
        records = read_metrics(bench.run_folder(spec, label, 0) / "metrics.jsonl")
        steps = [r for r in records if "rollout/episodes" in r]
        counts[label] = sum(r["rollout/episodes"] for r in steps)
        shares = results["curricula"][label]["units_left"]
        assert sum(shares.values()) == pytest.approx(1.0), label  # a histogram of all rollouts
        if label == "none":  # no hint: every rollout has the whole solution left to do
            assert all(r["curriculum/hint_rate"] == 0 for r in steps)
        if label == "seele-capped":  # never the whole solution, answer included
            assert "0" not in shares
        if label == "seele":  # the paper's first visit: all but the last unit
            assert results["curricula"][label]["hint_rate_mean"] > 0
    assert set(counts.values()) == {results["rollouts_per_run"]}, counts
    for label, c in results["minus_none"].items():
        assert c["n"] == 1 and math.isnan(c["low"]), label  # one seed: no interval
