"""MathHintEnv: the Gymnasium contract, real data, vector envs and every error path."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from test_hints import TinyChat, WhitespaceTokenizer

import seele_env  # noqa: F401  (registers the environments)
from seele_env import EnvUsageError, HintError, MathHintEnv, Problem, Verifier, make_vec
from seele_env.errors import SeeleError

INFO_AFTER_RESET = {
    "problem_id", "hint_rate", "requested_hint_rate", "hint_len", "n_units", "hint_unit",
    "hint_text", "placement", "prompt", "source",
}  # fmt: skip
INFO_AFTER_STEP = INFO_AFTER_RESET | {"correct", "extracted_answer", "verify_error", "formatted"}

PROBLEMS = [
    Problem("p1", "What is 2 + 3?", "5", "Step 1: 2 + 3 = 5.\nStep 2: The answer is \\boxed{5}."),
    Problem("p2", "What is 10 - 4?", "6", "Step 1: 10 - 4 = 6\nStep 2: So \\boxed{6}"),
    Problem("answer-only", "Find the number.", "42", None),
]


@pytest.fixture(scope="module")
def verifier():
    with Verifier(timeout_s=10.0) as v:
        yield v


@pytest.fixture
def env(verifier):
    env = MathHintEnv(problems=PROBLEMS, verifier=verifier, template="plain")
    yield env
    env.close()


def test_make_with_no_arguments_runs_an_episode() -> None:
    env = gym.make("seele/MathHint-v0")
    obs, info = env.reset(seed=3)
    assert isinstance(obs, str) and obs.startswith("A conversation between User and Assistant")
    assert set(info) == INFO_AFTER_RESET
    assert info["hint_len"] == 0 and info["hint_text"] == "" and obs == info["prompt"]
    answer = env.unwrapped.problems.get(info["problem_id"]).answer
    obs2, reward, terminated, truncated, info = env.step(f"So it is \\boxed{{{answer}}}.")
    assert (obs2, reward, terminated, truncated) == ("", 1.0, True, False)
    assert set(info) == INFO_AFTER_STEP
    assert info["correct"] is True and info["extracted_answer"] == answer
    assert info["verify_error"] is None
    env.close()


def test_make_with_module_prefix_in_a_fresh_interpreter() -> None:
    code = (
        "import gymnasium as gym, sys\n"
        "env = gym.make('seele_env:seele/MathHint-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "print(info['problem_id'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("procedural/")


def test_response_hint_prefixes_the_observation_and_counts_for_the_answer(env) -> None:
    obs, info = env.reset(options={"problem_id": "p1", "hint_rate": 0.5})
    assert info["n_units"] == 2 and info["hint_len"] == 1 and info["hint_rate"] == 0.5
    assert info["hint_text"] == "Step 1: 2 + 3 = 5.\n"
    assert obs == "Problem: What is 2 + 3?\nSolution:\nStep 1: 2 + 3 = 5.\n"
    assert obs == info["prompt"] + info["hint_text"]
    # At rate 1 the whole solution, answer included, is given: an empty completion is right.
    env.reset(options={"problem_id": "p1", "hint_rate": 1.0})
    assert env.step("")[1] == 1.0
    # A completion's own later answer wins over the hint's.
    env.reset(options={"problem_id": "p1", "hint_rate": 1.0})
    _, reward, *_, info = env.step(" Wait, no: \\boxed{7}")
    assert reward == 0.0 and info["extracted_answer"] == "7"


def test_prompt_placement_puts_the_hint_in_the_prompt(verifier) -> None:
    env = MathHintEnv(problems=PROBLEMS, verifier=verifier, placement="prompt", template="plain")
    obs, info = env.reset(options={"problem_id": "p2", "hint_rate": 1.0})
    assert obs == info["prompt"] and "Step 2: So \\boxed{6}" in obs
    assert env.step("")[1] == 0.0  # the completion itself must give the answer
    env.reset(options={"problem_id": "p2", "hint_rate": 1.0})
    assert env.step("<answer>6</answer>")[1] == 1.0


def test_realised_hint_rate_is_reported(env) -> None:
    _, info = env.reset(options={"problem_id": "p1", "hint_rate": 0.3})
    assert info["requested_hint_rate"] == 0.3
    assert info["hint_len"] == 1 and info["hint_rate"] == 0.5  # round(0.3·2) = 1 of 2 units


def test_answer_only_problems_work_without_hints_and_refuse_hints(env) -> None:
    _, info = env.reset(options={"problem_id": "answer-only"})
    assert info["n_units"] == 0 and info["hint_rate"] == 0.0
    assert env.step("\\boxed{42}")[1] == 1.0
    with pytest.raises(HintError, match="'answer-only', which has no reference solution"):
        env.reset(options={"problem_id": "answer-only", "hint_rate": 0.5})


def test_format_reward(verifier) -> None:
    env = MathHintEnv(problems=PROBLEMS, verifier=verifier, format_reward=0.1)
    env.reset(options={"problem_id": "p2"})
    assert env.step("\\boxed{5}")[1] == pytest.approx(0.1)  # formatted but wrong
    env.reset(options={"problem_id": "p2"})
    assert env.step("The answer is 6")[1] == pytest.approx(1.0)  # right, not in a box
    env.reset(options={"problem_id": "p2"})
    assert env.step("\\boxed{6}")[1] == pytest.approx(1.1)


def test_same_seed_same_problem_and_info() -> None:
    env = MathHintEnv()
    first = env.reset(seed=11, options={"hint_rate": 0.5})
    ids = {env.reset()[1]["problem_id"] for _ in range(20)}
    assert env.reset(seed=11, options={"hint_rate": 0.5}) == first
    assert len(ids) > 10  # unseeded resets go on drawing different problems
    env.close()


def test_check_env_passes() -> None:
    env = gym.make("seele/MathHint-v0", render_mode="ansi").unwrapped  # with a spec: all checks
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env, skip_render_check=False)
    env.close()


def test_unicode_actions_are_in_the_action_space(env) -> None:
    text = "∫ x² dx = x³/3 — so \\boxed{5} 🎉"
    assert env.action_space.contains(text) and env.observation_space.contains("")
    env.reset(options={"problem_id": "p1"})
    assert env.step(text)[1] == 1.0


def test_render_ansi(verifier) -> None:
    env = MathHintEnv(problems=PROBLEMS, verifier=verifier, render_mode="ansi")
    env.reset(options={"problem_id": "p1"})
    env.step("\\boxed{5}")
    text = env.render()
    assert "What is 2 + 3?" in text and "\\boxed{5}" in text and "[reward 1.0]" in text


# -- real data -----------------------------------------------------------------------------------


def test_gsm8k_episode_on_real_data(shared_data) -> None:
    env = gym.make(
        "seele/MathHint-v0",
        dataset="gsm8k",
        data_path=shared_data / "gsm8k",
        split="test",
        hint_unit="steps",
        placement="response",
        template="r1",
    )
    _, info = env.reset(options={"problem_id": "gsm8k/test/0", "hint_rate": 0.5})
    assert info["n_units"] == 2 and info["hint_len"] == 1
    assert info["hint_text"] == "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
    _, reward, *_, info = env.step("She makes 9 * 2 = 18 dollars.\n#### 18")
    assert reward == 1.0 and info["extracted_answer"] == "18"
    env.close()


def test_math500_token_units_and_chat_template(shared_data) -> None:
    tok = WhitespaceTokenizer()
    env = MathHintEnv(
        dataset="math500",
        data_path=shared_data / "math500",
        split="test",
        hint_unit="tokens",
        template="chat",
        tokenizer=_ChatAndTokens(tok),
    )
    obs, info = env.reset(seed=0, options={"hint_rate": 0.25})
    problem = env.problems.get(info["problem_id"])
    assert info["n_units"] == len(tok.encode(problem.solution))
    assert problem.solution.startswith(info["hint_text"])
    assert obs.startswith("<|user|>") and obs.endswith("<|assistant|>" + info["hint_text"])
    env.close()


def test_real_tokenizer_token_units_and_chat_template(hf_tokenizer) -> None:
    env = MathHintEnv(hint_unit="tokens", template="chat", tokenizer=hf_tokenizer, num_problems=50)
    for seed in range(20):
        obs, info = env.reset(seed=seed, options={"hint_rate": 0.5})
        solution = env.problems.get(info["problem_id"]).solution
        assert info["n_units"] == len(hf_tokenizer.encode(solution, add_special_tokens=False))
        assert solution.startswith(info["hint_text"]) and info["hint_text"]
        assert obs == info["prompt"] + info["hint_text"] and obs.startswith("<|user|>")
    env.close()


class _ChatAndTokens(WhitespaceTokenizer, TinyChat):
    def __init__(self, tok: WhitespaceTokenizer) -> None:
        self.vocab, self.inverse = tok.vocab, tok.inverse


def test_aime25_is_answer_only(shared_data) -> None:
    env = MathHintEnv(dataset="aime25", data_path=shared_data / "aime25", split="test")
    _, info = env.reset(seed=0)
    assert info["n_units"] == 0
    with pytest.raises(HintError, match="no reference solution"):
        env.reset(seed=0, options={"hint_rate": 0.5})
    env.close()


# -- vector envs ---------------------------------------------------------------------------------


def test_sync_vector_env() -> None:
    envs = gym.make_vec("seele/MathHint-v0", num_envs=2, vectorization_mode="sync")
    obs, infos = envs.reset(seed=0, options={"hint_rate": 0.5})
    assert isinstance(obs, tuple) and all(o.startswith("A conversation") for o in obs)
    assert len(set(infos["problem_id"])) == 2
    _, rewards, terminated, _, _ = envs.step(("\\boxed{0}", "no idea"))
    assert terminated.all() and rewards.shape == (2,)
    envs.close()


def _answers(envs, infos) -> tuple[str, ...]:
    problems = envs.call("problems")
    return tuple(
        f"\\boxed{{{problems[i].get(pid).answer}}}" for i, pid in enumerate(infos["problem_id"])
    )


@pytest.mark.parametrize("vectorization_mode", ["sync", "async"])
def test_make_vec_over_many_reset_step_rounds(vectorization_mode) -> None:
    """Regression: each round is reset(options) then step(actions); every step must really step.

    In gymnasium 1.4 AsyncVectorEnv, shared_memory=True returns '0' * max_length for text
    observations, and with shared_memory=False the default NEXT_STEP autoreset swallows the step
    after an explicit reset (actions ignored, reward 0). make_vec avoids both.
    """
    envs = make_vec(2, vectorization_mode=vectorization_mode)
    _, infos = envs.reset(seed=0, options={"hint_rate": 0.5})
    for round_ in range(4):
        obs, infos = envs.reset(options={"hint_rate": 0.5})
        assert all(o.startswith("A conversation between User and Assistant") for o in obs)
        assert (infos["hint_len"] > 0).all()
        _, rewards, terminated, _, step_infos = envs.step(_answers(envs, infos))
        assert rewards.tolist() == [1.0, 1.0], round_
        assert terminated.all() and step_infos["correct"].all()
    envs.close()


def test_make_vec_same_step_autoreset_returns_the_next_prompts() -> None:
    envs = make_vec(2, autoreset_mode="SameStep")
    _, infos = envs.reset(seed=0)
    for _ in range(3):
        obs, rewards, terminated, _, infos_next = envs.step(_answers(envs, infos))
        assert rewards.tolist() == [1.0, 1.0] and terminated.all()
        assert infos_next["final_info"]["correct"].all()
        assert all(o.startswith("A conversation") for o in obs)  # the next episode's prompts
        infos = infos_next
    envs.close()


def test_make_vec_refuses_the_broken_async_setting() -> None:
    with pytest.raises(ValueError, match="NEXT_STEP"):
        make_vec(2, autoreset_mode="NextStep")
    with pytest.raises(ValueError, match="vectorization_mode='vector_entry_point'"):
        make_vec(2, vectorization_mode="vector_entry_point")


@pytest.mark.parametrize(
    ("env_id", "vectorization_mode"),
    [
        ("seele/MathHint-v0", "sync"),
        ("seele/MathHint-v0", "async"),  # gymnasium's shared memory, our UnicodeText handlers
        ("seele/MathHint-v0", None),  # the vector_entry_point: seele_env.make_vec
        ("seele/SEELE-v0", "async"),
        ("seele/Curriculum-v0", None),
    ],
)
def test_gym_make_vec_with_its_defaults_scores_gold_answers_every_round(
    env_id, vectorization_mode
) -> None:
    """Regression (issue 15): gym.make_vec's async default crashed in reset (KeyError: ' ' in
    gymnasium's shared memory for Text) and every registered id must score gold answers 1 on
    every round of explicit reset(options) + step, whatever vector constructor built it."""
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=vectorization_mode)
    for round_ in range(4):
        obs, infos = envs.reset(seed=round_, options={"hint_rate": 0.5})
        assert all(o.startswith("A conversation between User and Assistant") for o in obs)
        _, rewards, terminated, _, step_infos = envs.step(_answers(envs, infos))
        assert rewards.tolist() == [1.0, 1.0], round_
        assert terminated.all() and step_infos["correct"].all()
    envs.close()


def test_gym_make_vec_refuses_async_without_shared_memory_under_next_step() -> None:
    """Regression (issue 15): that setting scored every second round 0, silently."""
    with pytest.raises(EnvUsageError, match=r"seele_env\.make_vec"):
        gym.make_vec(
            "seele/MathHint-v0",
            num_envs=2,
            vectorization_mode="async",
            vector_kwargs={"shared_memory": False},
        )
    disabled = {"shared_memory": False, "autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    envs = gym.make_vec("seele/MathHint-v0", 2, vectorization_mode="async", vector_kwargs=disabled)
    for _ in range(2):
        _, infos = envs.reset(options={"hint_rate": 0.5})
        assert envs.step(_answers(envs, infos))[1].tolist() == [1.0, 1.0]
    envs.close()


@pytest.mark.parametrize("vectorization_mode", ["sync", "async"])
def test_make_vec_step_without_reset_is_a_clear_error(vectorization_mode) -> None:
    """Regression (issue 15): sync make_vec raised a bare AssertionError on a step without reset."""
    envs = make_vec(2, vectorization_mode=vectorization_mode)
    with pytest.raises(EnvUsageError, match=r"call reset\(\) first"):
        envs.step(("1", "2"))
    envs.reset(seed=0)
    envs.step(("1", "2"))
    with pytest.raises(EnvUsageError, match=r"env\(s\) \[0, 1\]"):
        envs.step(("1", "2"))
    envs.close()


# -- errors ---------------------------------------------------------------------------------------


def test_step_before_reset_and_after_the_episode(env) -> None:
    with pytest.raises(EnvUsageError, match=r"call reset\(\) first"):
        env.step("x")
    env.reset()
    env.step("x")
    with pytest.raises(EnvUsageError, match=r"reset\(\) again after each step"):
        env.step("x")


@pytest.mark.parametrize("action", [None, 5, ["\\boxed{5}"], b"\\boxed{5}"])
def test_non_string_action(env, action) -> None:
    env.reset()
    with pytest.raises(EnvUsageError, match="must be the model's completion as a str"):
        env.step(action)


def test_unknown_problem_id_suggests_a_close_one(env) -> None:
    with pytest.raises(SeeleError, match="p11") as excinfo:
        env.reset(options={"problem_id": "p11"})
    assert "p1" in str(excinfo.value)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.5"])
def test_hint_rate_outside_unit_interval(env, rate) -> None:
    with pytest.raises(HintError, match="hint_rate"):
        env.reset(options={"hint_rate": rate})


def test_unknown_reset_option(env) -> None:
    with pytest.raises(EnvUsageError, match="Did you mean 'hint_rate'"):
        env.reset(options={"hint_rte": 0.5})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"placement": "middle"}, "placement='middle'"),
        ({"template": "qwen"}, "template='qwen'"),
        ({"template": "chat"}, "needs a tokenizer with apply_chat_template"),
        ({"hint_unit": "tokens"}, "needs a tokenizer with encode"),
        ({"hint_unit": "words"}, "hint_unit='words'"),
        ({"default_hint_rate": 2.0}, "hint_rate=2.0"),
        ({"render_mode": "human"}, "render_mode='human'"),
        ({"problems": []}, "no problems"),
        ({"format_reward": "0.1"}, r"format_reward='0.1' must be a finite number"),
        ({"format_reward": float("nan")}, "format_reward=nan"),
        # Regression: a 50 MB question gave a 52-million-character observation.
        ({"problems": [Problem("big", "x" * 200_001, "1", None)]}, "longer than the obs"),
    ],
)
def test_bad_constructor_arguments(kwargs, message) -> None:
    kwargs.setdefault("problems", PROBLEMS)
    with pytest.raises(SeeleError, match=message):
        MathHintEnv(**kwargs)


def test_rendering_options_as_one_object(verifier) -> None:
    from seele_env.hints import Rendering

    rendering = Rendering(placement="prompt", template="plain")
    env = MathHintEnv(problems=PROBLEMS, verifier=verifier, rendering=rendering)
    flat = MathHintEnv(problems=PROBLEMS, verifier=verifier, placement="prompt", template="plain")
    options = {"problem_id": PROBLEMS[0].id, "hint_rate": 0.5}
    assert env.reset(options=options) == flat.reset(options=options)
    assert flat.rendering == rendering and (env.placement, env.template) == ("prompt", "plain")
    with pytest.raises(EnvUsageError, match=r"Both rendering= and template= were given"):
        MathHintEnv(problems=PROBLEMS, verifier=verifier, rendering=rendering, template="r1")
    env.close()
    flat.close()


def test_a_prompt_over_the_observation_bound_is_refused(verifier) -> None:
    question = "x" * 199_990  # fits alone; the template makes the prompt too long
    env = MathHintEnv(problems=[Problem("long", question, "1", None)], verifier=verifier)
    with pytest.raises(SeeleError, match=r"'long' is 2\d{5} characters, above .*max_length"):
        env.reset()
    env.close()
