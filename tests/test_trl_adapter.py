"""SEELEForTRL: TRL's GRPOTrainer against the env, with the curriculum seeing the outcomes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install -e '.[trl]')")
torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from transformers.trainer_callback import PrinterCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from seele_agents.integrations.trl import COLUMNS, SEELEForTRL  # noqa: E402
from seele_agents.models.tiny import build_tiny  # noqa: E402
from seele_agents.training.sft import sft_examples, sft_warmup  # noqa: E402
from seele_env.curricula import SEELE  # noqa: E402
from seele_env.env import MathHintEnv  # noqa: E402
from seele_env.errors import EnvUsageError  # noqa: E402
from seele_env.problems import Problem  # noqa: E402
from seele_env.procedural import generate_problems  # noqa: E402

# Hand-written problems: "Compute a + b." with a two-step solution whose last step boxes a + b.
SUMS = {"hand/0": (2, 3), "hand/1": (4, 4), "hand/2": (10, 7)}
HAND = [
    Problem(id=pid, question=f"Compute {a} + {b}.", answer=str(a + b),
            solution=f"Step 1: {a} + {b} = {a + b}.\nStep 2: The answer is \\boxed{{{a + b}}}.")
    for pid, (a, b) in SUMS.items()
]  # fmt: skip
PROCEDURAL = {"dataset": "procedural", "difficulty": 1, "families": ["arithmetic"],
              "num_problems": 16, "template": "plain", "hint_unit": "tokens"}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread, restored afterwards: the tiny model gains nothing from more, and on a
    busy 2-core machine two threads wait on each other (measured: 100-330 s instead of 9 s for the
    warm-up and GRPO fixture)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ObservedSEELE(SEELE):
    """The real SEELE controller, plus a log of every round it closes (its own hook)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed: list[tuple[str, float, float, int]] = []

    def _observe_round(self, problem_id: str, rate: float, correct: float, count: int) -> None:
        self.closed.append((problem_id, rate, correct, count))


def hand_adapter(interleave: int = 2) -> SEELEForTRL:
    env = SEELE(MathHintEnv(problems=HAND, template="plain"), num_rounds=2, group_size=3, seed=0)
    return SEELEForTRL(env, interleave=interleave)


def columns(row: dict[str, Any], n: int) -> dict[str, list[Any]]:
    return {key: [row[key]] * n for key in COLUMNS[1:]}


def config(tmp_path, **overrides: Any) -> GRPOConfig:
    values = {"output_dir": str(tmp_path), "report_to": "none", "use_cpu": True, "bf16": False,
              "num_generations": 4, "per_device_train_batch_size": 8, "shuffle_dataset": False,
              "max_steps": 2, "max_completion_length": 8, "logging_steps": 1,
              "save_strategy": "no", "disable_tqdm": True, "seed": 0}  # fmt: skip
    return GRPOConfig(**{**values, **overrides})


# -- the reward function, without TRL ------------------------------------------------------------


def test_reward_scores_with_the_verifier_and_records_the_round():
    adapter = hand_adapter()
    row = next(adapter.rows(problems_per_batch=1))
    a, b = SUMS[row["problem_id"]]
    # First visit: all but the last of 2 steps, so rate 1/2 and the hint is step 1.
    assert (row["round"], row["hint_rate"]) == (1, 0.5)
    assert row["hint_text"] == f"Step 1: {a} + {b} = {a + b}.\n"
    assert row["prompt"] == f"Problem: Compute {a} + {b}.\nSolution:\n" + row["hint_text"]
    completions = [
        f"Step 2: The answer is \\boxed{{{a + b}}}.",  # right
        f"\\boxed{{{a + b + 1}}}",  # wrong
        "",  # no answer: the hint boxes none
    ]
    assert adapter.reward([row["prompt"]] * 3, completions, **columns(row, 3)) == [1.0, 0.0, 0.0]
    # The round closed with 1 of 3 right at rate 1/2; round 2 is next.
    visit = adapter.curriculum.state_dict()["visits"][row["problem_id"]]
    assert visit["rounds"] == [[0.5, 1.0, 3]]
    assert adapter.curriculum.round_of(row["problem_id"]) == 2
    assert adapter.outcomes_recorded == 3


def test_next_round_waits_for_the_previous_rounds_outcomes():
    adapter = hand_adapter(interleave=2)
    rows = adapter.rows(problems_per_batch=1)
    first, second = next(rows), next(rows)  # round 1 of cohorts 0 and 1
    assert first["problem_id"] != second["problem_id"]
    with pytest.raises(EnvUsageError, match=r"round 2 of problem .* before the completions"):
        next(rows)  # round 2 of cohort 0, whose round 1 is unscored
    adapter.reward([first["prompt"]] * 3, ["\\boxed{0}"] * 3, **columns(first, 3))
    again = next(adapter.rows(problems_per_batch=1))
    # The rate a sequential agent gets from the same outcomes, on a fresh SEELE.
    replay = SEELE(MathHintEnv(problems=HAND, template="plain"), num_rounds=2, group_size=3)
    replay.hint_rates([first["problem_id"]])
    replay.record([first["problem_id"]], [[0, 0, 0]])
    assert again["problem_id"] == first["problem_id"] and again["round"] == 2
    assert again["hint_rate"] == replay.hint_rates([first["problem_id"]])[0] == 1.0


# -- errors --------------------------------------------------------------------------------------


def test_env_without_a_curriculum_is_refused():
    with pytest.raises(EnvUsageError, match="No curriculum wrapper found around MathHintEnv"):
        SEELEForTRL(MathHintEnv(problems=HAND))


def test_frozen_curriculum_and_bad_interleave_are_refused():
    with pytest.raises(EnvUsageError, match="frozen"):
        SEELEForTRL(SEELE(MathHintEnv(problems=HAND), frozen=True))
    with pytest.raises(EnvUsageError, match="interleave=0 must be a positive integer"):
        hand_adapter(interleave=0)


def test_config_errors_name_the_setting(tmp_path):
    adapter = hand_adapter()  # group_size 3
    with pytest.raises(
        EnvUsageError, match=r"num_generations=4\).*group_size=3.*num_generations=3"
    ):
        adapter.dataset(config(tmp_path))
    with pytest.raises(EnvUsageError, match="shuffle_dataset=False"):
        adapter.dataset(config(tmp_path, num_generations=3, per_device_train_batch_size=3,
                               shuffle_dataset=True))  # fmt: skip
    with pytest.raises(EnvUsageError, match=r"3 problems; a block needs .* = 6"):
        adapter.rows(problems_per_batch=2)


def test_reward_refuses_rows_it_cannot_account_for():
    adapter = hand_adapter()
    row = next(adapter.rows(problems_per_batch=1))
    with pytest.raises(EnvUsageError, match=r"2 completions of round 1 .* group_size=3"):
        adapter.reward([row["prompt"]] * 2, ["", ""], **columns(row, 2))
    with pytest.raises(EnvUsageError, match="did not hand out"):
        adapter.reward(["p"] * 3, [""] * 3, **columns({**row, "round": 2}, 3))
    with pytest.raises(EnvUsageError, match="dataset column 'problem_id'"):
        adapter.reward(["p"] * 3, [""] * 3)
    with pytest.raises(EnvUsageError, match="not text"):
        adapter.reward(["p"] * 3, [[{"role": "assistant", "content": ""}]] * 3, **columns(row, 3))
    assert adapter.outcomes_recorded == 0  # nothing was recorded by the refused calls


# -- real GRPOTrainer runs -----------------------------------------------------------------------

P, N, STEPS = 2, 8, 4  # prompts per generation batch, num_generations, optimizer steps


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 GRPO steps (one block: 2 cohorts x 2 rounds) of the warmed-up tiny model."""
    model, tokenizer = build_tiny(seed=0)
    warmup = generate_problems(256, seed=1, difficulty=1, families=["arithmetic"])
    sft_warmup(model, tokenizer, sft_examples(warmup), steps=120, batch_size=32, lr=5e-3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    env = MathHintEnv(**PROCEDURAL, tokenizer=tokenizer)  # token units: fine-grained rates
    curriculum = ObservedSEELE(env, num_rounds=2, group_size=N, seed=0)
    adapter = SEELEForTRL(curriculum)
    calls: list[dict[str, Any]] = []

    def seele_reward(prompts, completions, **kwargs):
        drawn = adapter.rows_drawn  # what TRL had drawn when it scored this batch
        rewards = adapter.reward(prompts, completions, **kwargs)
        row_columns = {key: list(kwargs[key]) for key in ("problem_id", "hint_rate", "round")}
        calls.append({"prompts": list(prompts), "completions": list(completions),
                      "rewards": rewards, "rows_drawn": drawn, **row_columns})  # fmt: skip
        return rewards

    args = config(tmp_path_factory.mktemp("grpo"), num_generations=N,
                  per_device_train_batch_size=P * N, max_steps=STEPS, max_completion_length=32,
                  learning_rate=1e-3, loss_type="dr_grpo", scale_rewards="none")  # fmt: skip
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                          reward_funcs=seele_reward,
                          train_dataset=adapter.dataset(args))  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rewards/seele_reward/mean" in entry]
    return {"model": model, "tokenizer": tokenizer, "before": before, "adapter": adapter,
            "calls": calls, "logs": logs}  # fmt: skip


def test_grpo_steps_train_the_model(trained):
    assert len(trained["logs"]) == STEPS
    # A group with mixed outcomes is what gives GRPO a gradient.
    assert min(entry["frac_reward_zero_std"] for entry in trained["logs"]) < 1
    changed = [name for name, p in trained["model"].named_parameters()
               if not torch.equal(p.detach(), trained["before"][name])]  # fmt: skip
    assert changed


def test_curriculum_records_every_completion_once(trained):
    adapter, calls = trained["adapter"], trained["calls"]
    assert len(calls) == STEPS
    assert adapter.outcomes_recorded == STEPS * P * N
    closed = adapter.curriculum.closed  # the rounds SEELE itself closed
    assert len(closed) == STEPS * P and all(count == N for *_, count in closed)
    for j, call in enumerate(calls):
        for g in range(P):
            group = slice(g * N, (g + 1) * N)
            pid = call["problem_id"][group.start]
            assert call["problem_id"][group] == [pid] * N
            assert closed[j * P + g] == (pid, call["hint_rate"][group.start],
                                         sum(call["rewards"][group]), N)  # fmt: skip


def test_trl_logs_the_verifiers_rewards(trained):
    env = MathHintEnv(**PROCEDURAL, tokenizer=trained["tokenizer"])  # same problems, own env
    for call, entry in zip(trained["calls"], trained["logs"], strict=True):
        ours = []
        for prompt, completion, pid, rate in zip(call["prompts"], call["completions"],
                                                 call["problem_id"], call["hint_rate"],
                                                 strict=True):  # fmt: skip
            observation, _ = env.reset(options={"problem_id": pid, "hint_rate": rate})
            assert observation == prompt
            ours.append(float(env.step(completion)[1]))
        assert call["rewards"] == ours
        assert math.isclose(entry["rewards/seele_reward/mean"], np.mean(ours), abs_tol=1e-6)
        assert math.isclose(entry["curriculum/hint_rate"], np.mean(call["hint_rate"]), abs_tol=1e-6)


def test_hint_rates_follow_the_curriculum(trained):
    """Replaying the scored outcomes on a fresh SEELE, in order, gives the rows' rates."""
    calls = trained["calls"]
    env = MathHintEnv(**PROCEDURAL, tokenizer=trained["tokenizer"])
    replay = SEELE(env, num_rounds=2, group_size=N)
    for j, call in enumerate(calls):
        ids = call["problem_id"][::N]
        assert call["round"][::N] == [j // 2 + 1] * P  # cohort j % 2, round j // 2 + 1
        assert list(replay.hint_rates(ids)) == call["hint_rate"][::N]
        replay.record(ids, np.reshape(call["rewards"], (P, N)))
    for call in calls[:2]:  # first visits: all but the last unit
        for pid, rate in zip(call["problem_id"], call["hint_rate"], strict=True):
            assert rate == (env.n_units(pid) - 1) / env.n_units(pid)
    assert calls[2]["problem_id"] == calls[0]["problem_id"]  # cohort 0's round 2


def test_trl_reads_one_batch_ahead_and_the_step_ends_after_the_block(trained):
    adapter, calls = trained["adapter"], trained["calls"]
    # Measured read-ahead: batch j is scored after batch j + 1 was drawn.
    assert [call["rows_drawn"] for call in calls] == [(j + 2) * P for j in range(STEPS)]
    # The block's 4 batches were scored, so its curriculum step ended; the next block's first
    # cohort, drawn ahead, kept its open round 1 through end_step.
    assert adapter.curriculum.step_count == 1 == adapter.steps_ended
    visits = adapter.curriculum.state_dict()["visits"]
    assert len(visits) == P and all(v["rounds"] == [] and v["rate"] is not None
                                    for v in visits.values())  # fmt: skip
    assert not set(visits) & set(calls[-1]["problem_id"])


def test_interleave_1_with_trls_read_ahead_raises_instead_of_serving_stale_rates(tmp_path):
    model, tokenizer = build_tiny(seed=0)
    env = MathHintEnv(**PROCEDURAL, tokenizer=tokenizer)
    adapter = SEELEForTRL(SEELE(env, num_rounds=2, group_size=N, seed=0), interleave=1)
    args = config(tmp_path, num_generations=N, per_device_train_batch_size=P * N)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                          reward_funcs=adapter.reward,
                          train_dataset=adapter.dataset(args))  # fmt: skip
    with pytest.raises(EnvUsageError, match="interleave=1 generation batches ahead"):
        trainer.train()
    assert adapter.outcomes_recorded == 0


def test_interleave_1_suffices_when_trl_does_not_read_ahead(tmp_path):
    """steps_per_generation = 2 x gradient_accumulation_steps: a batch is drawn after scoring."""
    model, tokenizer = build_tiny(seed=0)
    env = MathHintEnv(**PROCEDURAL, tokenizer=tokenizer)
    adapter = SEELEForTRL(SEELE(env, num_rounds=2, group_size=N, seed=0), interleave=1)
    args = config(tmp_path, num_generations=N, per_device_train_batch_size=P * N // 2,
                  steps_per_generation=2, max_steps=4)  # fmt: skip
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                          reward_funcs=adapter.reward,
                          train_dataset=adapter.dataset(args))  # fmt: skip
    trainer.train()
    # 4 optimizer steps = 2 generation batches of P prompts: round 1 then round 2, one block.
    assert adapter.outcomes_recorded == 2 * P * N
    assert adapter.curriculum.step_count == 1
