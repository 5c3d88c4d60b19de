"""seele_env.rewards: the reward functions, called the way verl, TRL and OpenRLHF call them.

TRL runs for real (GRPOTrainer on the tiny model). OpenRLHF's real SingleTurnAgentExecutor loads
our ``reward_func`` from a file when openrlhf imports (``pip install --no-deps openrlhf
aiohttp pylatexenc`` is enough). verl is called through its documented signature here, loaded
from a file the way its ``custom_reward_function`` loader does; its real reward managers run in
``test_verl_reward_managers_call_our_functions`` where verl imports. verl's modules need
omegaconf, whose ANTLR runtime (4.9.3) differs from the 4.13.2 math-verify installs, so that
test runs in its own environment (math-verify's parser ships both ANTLR versions)::

    python -m venv --system-site-packages /tmp/verl-venv
    /tmp/verl-venv/bin/pip install --no-deps verl==0.9.1 omegaconf hydra-core \
        antlr4-python3-runtime==4.9.3 ray tensordict codetiming pyvers msgpack
    /tmp/verl-venv/bin/python -m pytest tests/test_rewards.py -k verl
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from seele_env import rewards
from seele_env.rewards import MathReward, response_after_prompt
from seele_env.verify import Verifier

# math-verify's parser takes many seconds on this (see tests/test_verify.py): a real hang.
HANG = r"\boxed{" + "(" * 40 + "x" + ")" * 40 + "}"
TIMEOUT_S = 1.0
SLACK_S = 1.5
STARTUP_SLACK_S = 15.0


@pytest.fixture(scope="module")
def reward():
    with MathReward(timeout_s=TIMEOUT_S, num_workers=2) as shared:
        # Start both workers (and the spare) now: start-up is not part of the timeout, and on
        # a loaded machine it takes seconds.
        assert shared.score(["1", "2", "3"], ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"]) == [1] * 3
        yield shared


def _wait_until_warm(reward: MathReward, n: int) -> None:
    """Until ``n`` idle workers have finished their start-up (as in tests/test_verify.py): a
    killed worker's replacement takes seconds to start on a loaded machine, and start-up is not
    part of the timeout."""
    pool = reward.verifier._pool
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        with pool.cond:
            idle = list(pool.idle)
        if len(idle) >= n and all(w.poll_ready() for w in idle):
            return
        time.sleep(0.05)
    pytest.fail(f"{n} warm workers did not come up within 60 s")


# (gold, completion, reward): right answers score 1, wrong or missing ones 0.
CASES = [
    ("18", "She sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars. \\boxed{18}", 1.0),
    ("18", "She makes \\boxed{20} dollars.", 0.0),
    ("\\frac{1}{2}", "The answer is 0.5.", 1.0),
    ("(1,2]", "<answer>(1, 2]</answer>", 1.0),
    ("7", "I do not know.", 0.0),
    ("7", "", 0.0),
]


def _load_file(path: Path, name: str):
    """Import a reward file the way verl and OpenRLHF do (spec_from_file_location)."""
    spec = importlib.util.spec_from_file_location("custom_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


# -- every signature: right 1, wrong 0 -----------------------------------------------------------


def test_verl_compute_score_from_a_file_as_verls_loader_calls_it(tmp_path):
    path = tmp_path / "seele_reward.py"
    path.write_text("from seele_env.rewards import compute_score\n")
    compute_score = _load_file(path, "compute_score")
    # verl's reward managers call with keywords and a dict extra_info (to which they add keys).
    got = [
        compute_score(
            data_source="openai/gsm8k",
            solution_str=completion,
            ground_truth=gold,
            extra_info={"index": i, "num_turns": None, "rollout_reward_scores": {}},
        )
        for i, (gold, completion, _) in enumerate(CASES)
    ]
    assert got == [expected for *_, expected in CASES]
    assert all(type(score) is float for score in got)


def test_verl_batch_signature(reward):
    golds = [gold for gold, *_ in CASES]
    got = reward.compute_score_batch(
        data_sources=["math"] * len(CASES),
        solution_strs=[completion for _, completion, _ in CASES],
        ground_truths=golds,
        extra_infos=[{} for _ in CASES],
    )
    assert got == [expected for *_, expected in CASES]


def test_trl_signature_with_text_and_conversational_completions(reward):
    completions = [completion for _, completion, _ in CASES]
    answers = [gold for gold, *_ in CASES]
    expected = [e for *_, e in CASES]
    extras = {"completion_ids": [[1]] * len(CASES), "trainer_state": None}
    assert reward(["q"] * len(CASES), completions, answer=answers, **extras) == expected
    chats = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward([[{"role": "user", "content": "q"}]] * len(CASES), chats, answer=answers) == (
        expected
    )
    # multimodal content parts and a tool turn: only the assistant's text counts
    parts = [
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}]},
        {"role": "tool", "content": "\\boxed{99}"},
        {"role": "assistant", "content": "So \\boxed{5}."},
    ]
    assert reward(["q"], [parts], answer=["5"]) == [1.0]


def test_openrlhf_signature_returns_tensors(reward):
    torch = pytest.importorskip("torch")
    prompts = [f"Problem {i}\nSolution:" for i in range(len(CASES))]
    queries = [p + c for p, (_, c, _) in zip(prompts, CASES, strict=True)]
    out = reward.reward_func(queries, prompts, [gold for gold, *_ in CASES])
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert out["rewards"].tolist() == [e for *_, e in CASES]
    assert torch.equal(out["scores"], out["rewards"])
    assert out["extra_logs"]["verify_error"].tolist() == [0, 0, 0, 0, 1, 1]  # no answer found


def test_the_prompt_is_not_scored(reward):
    # The prompt holds a boxed number (an instruction, an example): only the response counts.
    prompt = "Example: \\boxed{5}. Compute 2 + 3.\n"
    assert reward.reward_func([prompt + "no idea"], [prompt], ["5"])["rewards"].tolist() == [0.0]


def test_numeric_gold_answers_are_accepted(reward):
    np = pytest.importorskip("numpy")
    assert (
        reward.score([18, np.int64(18), 0.5], ["\\boxed{18}", "\\boxed{18}", "The answer is 1/2."])
        == [1.0] * 3
    )


def test_format_weight_adds_to_formatted_answers():
    with MathReward(num_workers=1, format_weight=0.1) as reward:
        assert reward.score(["5", "5", "5"], ["\\boxed{5}", "\\boxed{6}", "The answer is 5."]) == [
            1.1,
            0.1,
            1.0,
        ]


# -- hints -----------------------------------------------------------------------------------------

HINT = "Step 1: 2 + 3 = 5.\nStep 2: The answer is \\boxed{5}.\n"


def test_a_response_side_hint_is_verified_with_the_completion(reward):
    """Placement "response": the model continued the hint, so hint + completion is the answer
    (as in MathHintEnv); with the hint in the prompt only the completion counts."""
    response = {"placement": "response", "hint_text": HINT}
    in_prompt = {"placement": "prompt", "hint_text": HINT}
    assert reward.compute_score("x", "", "5", response) == 1.0
    assert reward.compute_score("x", "", "5", in_prompt) == 0.0
    assert reward(["q", "q"], ["", ""], answer=["5", "5"], info=[response, in_prompt]) == [1, 0]
    # a completion that changes the answer after the hint is judged on its own answer
    assert reward(["q"], ["No wait: \\boxed{6}"], answer=["5"], info=[response]) == [0.0]
    label = {"answer": "5", **response}
    assert reward.reward_func(["P"], ["P"], [label])["rewards"].tolist() == [1.0]


# -- the hard timeout ------------------------------------------------------------------------------


def test_timeout_is_hard_on_the_main_thread_and_in_threads(reward):
    _wait_until_warm(reward, 1)
    start = time.monotonic()
    assert reward.compute_score("x", HANG, "5") == 0.0
    assert time.monotonic() - start < TIMEOUT_S + SLACK_S
    # verl's reward loop and OpenRLHF call from worker threads, where SIGALRM cannot fire.
    calls = {
        "verl": lambda: reward.compute_score("x", HANG, "5"),
        "openrlhf": lambda: reward.reward_func(["P" + HANG], ["P"], ["5"])["rewards"].tolist(),
    }
    results: dict[str, object] = {}

    def in_thread(name: str) -> None:
        began = time.monotonic()
        results[name] = calls[name]()
        results[f"{name} s"] = time.monotonic() - began

    for name in calls:  # one after the other: each call then finds a warm worker
        _wait_until_warm(reward, 1)
        thread = threading.Thread(target=in_thread, args=(name,))
        thread.start()
        thread.join(timeout=60)
    assert results["verl"] == 0.0 and results["openrlhf"] == [0.0]
    # The bound allows a worker start-up (not part of the timeout; seconds on a loaded 2-core
    # machine); uncapped, math-verify spends far longer on HANG.
    assert max(results["verl s"], results["openrlhf s"]) < TIMEOUT_S + STARTUP_SLACK_S


def test_a_hang_costs_only_its_own_item_in_a_batch(reward):
    _wait_until_warm(reward, 1)
    start = time.monotonic()
    got = reward(["q"] * 3, ["\\boxed{1}", "\\boxed{3}", HANG], answer=["1", "3", "2"])
    assert got == [1.0, 1.0, 0.0]
    assert time.monotonic() - start < TIMEOUT_S + 2 * SLACK_S


def test_concurrent_callers_share_the_workers(reward):
    """verl's reward loop runs compute_score in a thread pool: many calls at once."""
    golds = [str(n) for n in range(16)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda g: reward.compute_score("x", f"\\boxed{{{g}}}", g), golds))
    assert got == [1.0] * 16


# -- bad input: clear errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r(["q"], ["\\boxed{1}"], gold=["1"]), ValueError,
         r"column 'answer'; TRL passed the columns \['gold'\].*MathReward\(answer_key=...\)"),
        (lambda r: r(["q", "q"], ["1", "2"], answer=["1"]), ValueError,
         "answer has 1 entries but completions has 2"),
        (lambda r: r(["q"], [42], answer=["1"]), TypeError, "completion 0 is a int: 42"),
        (lambda r: r(["q"], ["1"], answer=[None]), ValueError,
         "gold answer 0 is None .*Check which column holds the answers"),
        (lambda r: r(["q"], ["1"], answer=[True]), ValueError, "gold answer 0 is True"),
        (lambda r: r.compute_score("x", None, "1"), TypeError, "solution_str must be a str"),
        (lambda r: r.compute_score_batch(["x", "x"], ["1", "2"], ["1"]), ValueError,
         "ground_truths has 1 entries but solution_strs has 2"),
        (lambda r: r.reward_func(["Other text 5"], ["Prompt"], ["5"]), ValueError,
         "the query does not start with its prompt"),
        (lambda r: r.reward_func(["P5"], ["P"], ["5", "6"]), ValueError,
         "labels has 2 entries but queries has 1"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_error(reward, call, error, match):
    with pytest.raises(error, match=match):
        call(reward)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="format_weight must be a finite number >= 0, got -1"):
        MathReward(format_weight=-1)
    with pytest.raises(ValueError, match="answer_key must be a column name"):
        MathReward(answer_key="")
    with pytest.raises(ValueError, match="timeout_s must be a finite number > 0"):
        MathReward(timeout_s=0)


def test_the_prompt_is_matched_despite_changed_whitespace():
    assert response_after_prompt("A  b\nc \\boxed{1}", "A b c") == " \\boxed{1}"


def test_a_shared_verifier_is_left_running_an_owned_one_is_closed():
    with Verifier(num_workers=1) as verifier:
        assert verifier.verify("2", "\\boxed{2}").correct
        idle = {w.proc.pid for w in verifier._pool.idle}
        assert idle
        MathReward(verifier).close()
        assert {w.proc.pid for w in verifier._pool.idle} == idle
    owned = MathReward(num_workers=1)
    assert owned.score(["2"], ["\\boxed{2}"]) == [1.0]
    owned.close()
    assert not owned.verifier._pool.idle


def test_module_functions_share_one_reward():
    assert rewards.default_reward() is rewards.default_reward()
    assert rewards.math_reward(["q"], ["\\boxed{4}"], answer=["4"]) == [1.0]
    assert rewards.compute_score_batch(["x"], ["\\boxed{4}"], ["5"]) == [0.0]


# -- OpenRLHF's real executor --------------------------------------------------------------------


class _Engine:
    """Stands in for OpenRLHF's vLLM engine: 'generates' fixed token ids."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        output = SimpleNamespace(token_ids=self.token_ids, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


@pytest.mark.parametrize(("response", "expected"), [(" \\boxed{5}", 1.0), (" \\boxed{6}", 0.0)])
def test_openrlhf_executor_loads_and_calls_reward_func(tmp_path, response, expected):
    agent = pytest.importorskip(
        "openrlhf.utils.agent", reason="openrlhf is not installed (pip install --no-deps openrlhf)"
    )
    pytest.importorskip("transformers")
    from seele_agents.models.tiny import build_tokenizer, default_corpus

    tokenizer = build_tokenizer(default_corpus(0), vocab_size=300)
    path = tmp_path / "reward.py"
    path.write_text("from seele_env.rewards import reward_func  # noqa: F401\n")
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=str(path))
    assert executor.reward_func is rewards.reward_func
    engine = _Engine(tokenizer.encode(response, add_special_tokens=False))
    params = SimpleNamespace(max_tokens=64, logprobs=None)
    prompt = "Problem: Compute 2 + 3.\nSolution:"
    output = asyncio.run(executor.execute(prompt, "5", params, 512, tokenizer, engine))
    assert float(output["reward"]) == expected and float(output["scores"]) == expected
    torch = pytest.importorskip("torch")
    # what OpenRLHF's samples generator then does with them
    assert torch.tensor([output["reward"]]).flatten().tolist() == [expected]
    assert float(output["extra_logs"]["verify_error"]) == 0.0


# -- TRL's real GRPOTrainer ------------------------------------------------------------------------


@pytest.mark.slow  # ~40 s on a busy 2-core machine
def test_trl_grpo_trainer_calls_the_reward_with_the_exported_columns(tmp_path):
    """GRPOTrainer on the tiny model and an exported hinted dataset: TRL passes ``answer`` and
    ``info`` to the reward, and logs exactly what an independent verifier says of each
    hint + completion."""
    pytest.importorskip("trl", reason="TRL is not installed (pip install -e '.[trl]')")
    torch = pytest.importorskip("torch")
    from trl import GRPOConfig, GRPOTrainer

    from seele_agents.models.tiny import build_tiny
    from seele_env.export import export_rows, to_dataset
    from seele_env.procedural import generate_problems

    problems = generate_problems(4, difficulty=1, families=("arithmetic",))
    rates = {p.id: rate for p, rate in zip(problems, (0.0, 1.0, 0.0, 1.0), strict=True)}
    rows = export_rows(problems, layout="trl", hint_rate=rates, placement="response",
                       conversational=False, template="plain")  # fmt: skip
    calls: list[dict] = []
    shared = MathReward(num_workers=1)

    def math_reward(prompts, completions, **kwargs):
        scores = shared(prompts, completions, **kwargs)
        calls.append({"completions": completions, **kwargs, "scores": scores})
        return scores

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tokenizer = build_tiny(seed=0)
        args = GRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False,
                          num_generations=4, per_device_train_batch_size=8, max_steps=1,
                          max_completion_length=8, logging_steps=1, save_strategy="no",
                          disable_tqdm=True, seed=0)  # fmt: skip
        dataset = to_dataset(rows)
        trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args,
                              reward_funcs=[math_reward], train_dataset=dataset)  # fmt: skip
        trainer.train()
    finally:
        torch.set_num_threads(before)
        shared.close()
    assert calls, "TRL never called the reward"
    call = calls[0]
    assert {"answer", "info", "trainer_state", "completion_ids"} <= set(call)
    hinted = [info["hint_len"] == info["n_units"] for info in call["info"]]
    assert any(hinted) and not all(hinted)  # both pinned rates reached the reward
    with Verifier(num_workers=1) as verifier:
        expected = [
            float(verifier.verify(answer, info["hint_text"] + completion).correct)
            for answer, info, completion in zip(
                call["answer"], call["info"], call["completions"], strict=True
            )
        ]
    assert call["scores"] == expected
    logged = [e["rewards/math_reward/mean"] for e in trainer.state.log_history
              if "rewards/math_reward/mean" in e]  # fmt: skip
    assert logged == pytest.approx([sum(expected) / len(expected)])


# -- verl's real reward managers (where verl imports) ----------------------------------------------


def _verl_batch(tokenizer, prompts: list[str], responses: list[str], golds: list[str], infos):
    """A DataProto laid out as verl's rollout leaves it: left-padded prompts, right-padded
    responses, one attention mask over both, and the parquet row's non-tensor columns."""
    import numpy as np
    import torch
    from verl import DataProto

    def ids(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    p_ids, r_ids = [ids(p) for p in prompts], [ids(r) for r in responses]
    p_len, r_len, pad = max(map(len, p_ids)), max(map(len, r_ids)), tokenizer.pad_token_id
    prompt_t = torch.tensor([[pad] * (p_len - len(p)) + p for p in p_ids])  # [B, P]
    response_t = torch.tensor([r + [pad] * (r_len - len(r)) for r in r_ids])  # [B, R]
    mask = torch.tensor([[0] * (p_len - len(p)) + [1] * (len(p) + len(r)) + [0] * (r_len - len(r))
                         for p, r in zip(p_ids, r_ids, strict=True)])  # fmt: skip  # [B, P + R]
    return DataProto.from_dict(
        tensors={"prompts": prompt_t, "responses": response_t, "attention_mask": mask},
        non_tensors={
            "data_source": np.array(["openai/gsm8k"] * len(prompts), dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": g} for g in golds]),
            "extra_info": np.array([dict(i) for i in infos], dtype=object),
        },
    )


@pytest.mark.slow  # ~40 s: three 5 s timeouts and worker start-ups on a busy 2-core machine
def test_verl_reward_managers_call_our_functions(tmp_path):
    """verl's own loader (custom_reward_function.path/name), its naive and batch managers and
    its reward loop's per-sample manager (which calls compute_score from executor threads).

    verl's modules import omegaconf, which needs antlr4-python3-runtime 4.9.3, not the 4.13.2
    math-verify installs by default; math-verify works with either (its LaTeX parser ships
    both), so run this in an environment with verl, its dependencies and antlr 4.9.3."""
    pytest.importorskip(
        "verl.workers.reward_manager.naive",
        reason="verl does not import here; the module docstring says how to run this test",
    )
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop.reward_manager.naive import (
        NaiveRewardManager as LoopManager,
    )
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.workers.reward_manager.batch import BatchRewardManager
    from verl.workers.reward_manager.naive import NaiveRewardManager

    from seele_agents.models.tiny import build_tokenizer, default_corpus

    path = tmp_path / "seele_reward.py"
    path.write_text("from seele_env.rewards import compute_score, compute_score_batch  # noqa\n")

    def loaded(name: str):
        config = OmegaConf.create(
            {"reward": {"custom_reward_function": {"path": str(path), "name": name}}}
        )
        return get_custom_reward_fn(config)

    tokenizer = build_tokenizer(default_corpus(0), vocab_size=300)
    hint = "Step 1: 2 + 3 = 5.\n"
    infos = [{"placement": "prompt", "hint_text": hint}] * 3 + [
        {"placement": "response", "hint_text": "Step 1: The answer is \\boxed{5}."}
    ]
    prompts = ["Compute 2 + 3.\n" + hint] * 4
    responses = ["Step 2: so \\boxed{5}.", "Step 2: so \\boxed{6}.", HANG, ""]
    expected = [1.0, 0.0, 0.0, 1.0]
    data = _verl_batch(tokenizer, prompts, responses, ["5"] * 4, infos)
    last = data.batch["attention_mask"][:, data.batch["prompts"].shape[-1] :].sum(-1) - 1  # [B]

    for manager in (
        NaiveRewardManager(tokenizer, num_examine=0, compute_score=loaded("compute_score")),
        BatchRewardManager(tokenizer, num_examine=0, compute_score=loaded("compute_score_batch")),
    ):
        start = time.monotonic()
        scores = manager(data)  # [B, R]: the reward sits on each response's last token
        assert scores[range(4), last].tolist() == expected, type(manager).__name__
        assert scores.sum().item() == sum(expected)
        assert time.monotonic() - start < 5.0 + STARTUP_SLACK_S  # the default 5 s timeout

    loop = LoopManager(OmegaConf.create({}), tokenizer, loaded("compute_score"))

    async def all_rows():
        return await asyncio.gather(*(loop.run_single(data[i : i + 1]) for i in range(4)))

    results = loop.loop.run_until_complete(all_rows())  # the event loop the manager runs on
    assert [r["reward_score"] for r in results] == expected
