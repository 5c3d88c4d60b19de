"""Tests for seele_env.verify: real math-verify, real worker processes."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seele_env.verify import Verdict, Verifier, extract_answer, verify

# An input on which math-verify's LaTeX parser (ANTLR) takes many seconds of pure CPU: a real
# hang, not a test hook. 30 levels take ~3 s in 0.9.0; 40 are far beyond any timeout used here.
HANG = r"\boxed{" + "(" * 40 + "x" + ")" * 40 + "}"
# Timeout used in the hang tests, and the slack allowed on top of it (kill + reply).
TIMEOUT_S = 1.0
SLACK_S = 1.0

R = "Let me think step by step. First we add the two amounts, then subtract the cost. "

# (gold, completion, expected correct). Rows marked "trap" fail with a naive call of
# math-verify (bare gold, no cleanup of the extracted answer).
CASES = [
    # GSM8K-style integers and the four extraction methods
    ("18", R + r"So she makes \boxed{18} dollars.", True),
    ("18", R + "#### 18", True),
    ("18", R + "The answer is 18.", True),
    ("18", R + "<answer>18</answer>", True),
    ("18", R + "The final answer is $18$.", True),
    ("18", R + r"\boxed{17}", False),
    ("18", R + "#### 81", False),
    ("72", r"\boxed{72.0}", True),
    ("-3", r"\boxed{-3}", True),
    ("-3", r"\boxed{3}", False),
    # markdown / text traps
    ("73", "The answer is **73**.", True),  # trap: '**73**' parses as a string
    ("73", r"\boxed{**73**}", True),
    ("13", r"\boxed{\text{13}}", True),
    (r"\text{13}", r"\boxed{13}", True),  # trap: bare '\text{13}' parses to nothing
    ("13", r"<answer>\text{13}</answer>", True),
    (r"\text{(C)}", r"\boxed{C}", True),
    (r"\text{(C)}", r"\boxed{D}", False),
    # fractions, decimals, \dfrac, roots
    (r"\frac{1}{2}", r"\boxed{0.5}", True),
    (r"\frac12", r"\boxed{\frac{1}{2}}", True),  # trap: bare '\frac12' parses to nothing
    (r"\dfrac{33}{100}", r"\boxed{0.33}", True),
    (r"\frac{1}{3}", r"\boxed{0.33}", False),
    (r"\frac{\sqrt{2}}{2}", r"\boxed{\sqrt{2}/2}", True),
    (r"\frac{\sqrt2}{2}", r"\boxed{\frac{1}{\sqrt{2}}}", True),
    (r"2\sqrt{5}", r"\boxed{\sqrt{20}}", True),
    # intervals, sets, tuples, equations, complex, matrices, polynomials
    ("(1,2]", r"\boxed{(1,2]}", True),  # trap: bare '(1,2]' parses to nothing
    ("(1,2]", r"\boxed{[1,2]}", False),
    (r"(-\infty, 2) \cup (3, \infty)", r"\boxed{(-\infty,2)\cup(3,\infty)}", True),
    (r"\{1,2\}", r"\boxed{\{2,1\}}", True),
    (r"\{1,2\}", r"\boxed{\{1,3\}}", False),
    ("-2,1", r"\boxed{1,-2}", True),  # trap: bare '-2,1' parses as the number -2.1
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \frac{\pi}{2})}", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(\frac{\pi}{2}, 3)}", False),
    ("x=5", r"\boxed{5}", True),
    ("5", r"\boxed{x=5}", True),
    ("8+4i", r"\boxed{4i+8}", True),  # trap: bare '8+4i' parses as 8
    ("8+4i", r"\boxed{8-4i}", False),
    (
        r"\begin{pmatrix} -1 \\ 2 \end{pmatrix}",
        r"\boxed{\begin{pmatrix} -1 \\ 2 \end{pmatrix}}",
        True,
    ),
    ("x^2+2x+1", r"\boxed{(x+1)^2}", True),
    # units: degrees, percent, money, thousands separators
    (r"76^\circ", r"\boxed{76}", True),
    ("30", r"\boxed{30^\circ}", True),
    (r"10\%", r"\boxed{10\%}", True),
    ("18", r"The answer is \$18.", True),
    ("18", r"\boxed{\$18}", True),
    ("18", r"\boxed{18 \text{ dollars}}", True),
    ("18", "The answer is $18.", True),
    ("18", "The answer is 18 dollars.", True),  # trap: 'dollars' parses as a product
    ("1000", r"\boxed{1,000}", True),
    ("1,000", r"\boxed{1000}", True),
    ("1000000", "#### 1,000,000", True),
    ("12", r"\boxed{1,2}", False),  # '1,2' is the set {1, 2}, not twelve
    # which answer wins
    ("2", r"First guess \boxed{1}. Wait, recheck: \boxed{2}", True),
    ("1", r"First guess \boxed{1}. Wait, recheck: \boxed{2}", False),
    (r"\frac{1}{2}", r"nested \boxed{\frac{1}{2}}", True),
    ("5", r"\fbox{5}", True),
    ("5", r"so \boxed 5 is it", True),
    ("5", r"\boxed{5} but then \boxed{", True),  # last *complete* box
    ("5", r"unclosed \boxed{5", False),
    ("5", r"<answer>5</answer> and finally \boxed{6}", False),
    (r"\boxed{18}", "#### 18", True),  # a gold given boxed is unwrapped
    # empty / junk
    ("5", "", False),
    ("5", "   ", False),
    ("5", r"\boxed{}", False),
    ("42", "🤔💭 ùñíçødé \u200b junk \\boxed{42} ✅", True),
    ("42", "🤔💭 ùñíçødé junk \u0000\ufffd no answer", False),
    ("42", "\ud800 lone surrogate \\boxed{42}", True),
]


@pytest.fixture(scope="module")
def verifier():
    with Verifier(timeout_s=5.0, num_workers=2) as v:
        yield v


# ------------------------------------------------------------------------------------------
# extract_answer (pure, no processes)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (r"so \boxed{18}.", ("18", "boxed")),
        (r"\boxed{1} then \boxed{\frac{1}{2}}", (r"\frac{1}{2}", "boxed")),
        (r"\boxed{\{1,2\}}", (r"\{1,2\}", "boxed")),  # escaped braces are not groups
        (r"\boxed { 7 }", ("7", "boxed")),
        (r"\fbox{3}", ("3", "boxed")),
        (r"$\boxed 5$ done", ("5", "boxed")),
        (r"\boxed{5} and \boxed{", ("5", "boxed")),
        (r"\boxedx{5}", (None, None)),
        ("<answer> 12 </answer>", ("12", "answer_tag")),
        ("<ANSWER>1</ANSWER> <answer>2</answer>", ("2", "answer_tag")),
        ("The answer is 3.5.", ("3.5", "the_answer_is")),
        ("the answer is 4. Then the final answer is: 6. Bye", ("6", "the_answer_is")),
        ("The answer is $x=2$\nmore text", ("$x=2$", "the_answer_is")),
        ("work\n#### 1,234\n", ("1,234", "hashes")),
        ("#### 1 \n#### 2", ("2", "hashes")),
        # a later stated answer beats an earlier box or tag (issue 15); an earlier one does not
        (r"\boxed{1} <answer>2</answer> The answer is 3. #### 4", ("3", "the_answer_is")),
        ("<answer>2</answer> The answer is 3. #### 4", ("3", "the_answer_is")),
        (r"The answer is 3. <answer>2</answer> \boxed{1} #### 4", ("1", "boxed")),
        (r"\boxed{1}, so the answer is as above.", ("1", "boxed")),
        (r"\boxed{1} <answer>2</answer> #### 4", ("1", "boxed")),
        ("The answer is 18 eggs (eighteen), since 9*2=18!", ("18", "the_answer_is")),
        ("The answer is $18$, which matches.", ("$18$", "the_answer_is")),
        ("The answer is (a, b) here.", ("(a, b) here", "the_answer_is")),
        ("The answer is 3. #### 4", ("3", "the_answer_is")),
        ("no answer here", (None, None)),
        ("", (None, None)),
        ("<answer></answer>", (None, None)),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_extract_answer_non_str():
    assert extract_answer(None) == (None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "adversarial",
    [
        r"\boxed{" * 50_000,
        "{" * 100_000 + r"\boxed{1}",
        "the answer is " * 15_000,
        "<answer>" * 20_000 + "</answer>",
        "#### " * 40_000,
    ],
)
def test_extract_answer_is_fast_on_adversarial_input(adversarial):
    start = time.perf_counter()
    extract_answer(adversarial)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\\boxedfx{}<>/answr#$ .19")), max_size=80))
def test_extract_answer_returns_a_piece_of_the_input(text):
    answer, method = extract_answer(text)
    assert (answer is None) == (method is None)
    if answer is not None:
        assert answer and method in {"boxed", "answer_tag", "the_answer_is", "hashes"}
        assert answer in text


# ------------------------------------------------------------------------------------------
# The regression table
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("gold", "completion", "expected"), CASES)
def test_regression_table(verifier, gold, completion, expected):
    verdict = verifier.verify(gold, completion)
    assert verdict.correct is expected, verdict
    if expected:
        assert verdict.error is None


def test_batch_equals_one_by_one_in_order(verifier):
    golds = [g for g, _, _ in CASES]
    completions = [c for _, c, _ in CASES]
    batch = verifier.verify_batch(golds, completions)
    assert batch == [verifier.verify(g, c) for g, c in zip(golds, completions, strict=True)]
    assert [v.correct for v in batch] == [e for _, _, e in CASES]


def test_verdict_fields(verifier):
    boxed = verifier.verify("18", r"so \boxed{18}")
    assert boxed == Verdict(correct=True, extracted_answer="18", error=None, formatted=True)
    hashes = verifier.verify("18", "#### 19")
    assert hashes == Verdict(correct=False, extracted_answer="19", error=None, formatted=False)
    assert verifier.verify("18", "no idea").error == "no answer found"
    assert verifier.verify("5", "The answer is }{.").error.startswith("answer did not parse")


def test_reward_with_and_without_format_bonus():
    assert Verdict(True, "1", None, True).reward() == 1.0
    assert Verdict(True, "1", None, True).reward(format_weight=0.1) == pytest.approx(1.1)
    assert Verdict(False, "1", None, False).reward(format_weight=0.1) == 0.0


def test_gold_that_does_not_parse(verifier):
    verdict = verifier.verify("}{", r"\boxed{1}")
    assert not verdict.correct
    assert verdict.error.startswith("gold answer did not parse")


# ------------------------------------------------------------------------------------------
# Never raises: bad types, size caps
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "completion", "error"),
    [
        ("5", None, "completion must be a str, got NoneType"),
        ("5", b"\\boxed{5}", "completion must be a str, got bytes"),
        (5, r"\boxed{5}", "gold must be a str, got int"),
        ("", r"\boxed{5}", "gold answer did not parse: empty"),
    ],
)
def test_bad_inputs_give_error_verdicts(verifier, gold, completion, error):
    verdict = verifier.verify(gold, completion)
    assert verdict.correct is False and verdict.error == error


def test_size_caps():
    with Verifier(max_completion_chars=100, max_answer_chars=10) as v:
        long_completion = v.verify("5", "x" * 101)
        assert not long_completion.correct
        assert long_completion.error == "completion too long: 101 chars > 100"
        long_answer = v.verify("5", r"\boxed{" + "1" * 11 + "}")
        assert not long_answer.correct and long_answer.error.startswith("answer too long")
        assert long_answer.extracted_answer == "1" * 11
        assert v.verify("1" * 11, r"\boxed{1}").error.startswith("gold answer too long")
        assert v.verify("5", r"\boxed{5}").correct  # within the caps


# ------------------------------------------------------------------------------------------
# Hard timeout, crashes, threads
# ------------------------------------------------------------------------------------------


def _worker_pids(v: Verifier) -> set[int]:
    return {w.proc.pid for w in v._pool.idle}


def test_timeout_kills_worker_and_next_call_works():
    with Verifier(timeout_s=TIMEOUT_S, num_workers=1) as v:
        assert v.verify("1", r"\boxed{1}").correct  # start-up is not part of the timeout
        old_pids = _worker_pids(v)
        start = time.monotonic()
        verdict = v.verify("5", HANG)
        elapsed = time.monotonic() - start
        assert verdict.correct is False
        assert verdict.error == f"timeout after {TIMEOUT_S}s"
        assert TIMEOUT_S * 0.9 <= elapsed < TIMEOUT_S + SLACK_S
        assert v.verify("5", r"\boxed{5}").correct
        assert len(old_pids - _worker_pids(v)) == 1  # the hung worker (only it) was replaced


def _wait_until_warm(v: Verifier, n: int) -> None:
    """Until ``n`` idle workers have finished their start-up (bounded: 60 s)."""
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        with v._pool.cond:
            idle = list(v._pool.idle)
        if len(idle) >= n and all(w.poll_ready() for w in idle):
            return
        time.sleep(0.05)
    pytest.fail(f"{n} warm workers did not come up within 60 s")


def test_call_after_a_timeout_takes_a_warm_spare():
    """Regression (issue 15): after a timeout the worker's respawn (4.6-8.7 s on a loaded
    machine) landed on the next, innocent call. A spare started in the background takes over."""
    with Verifier(timeout_s=TIMEOUT_S, num_workers=1) as v:
        assert v.verify("1", r"\boxed{1}").correct
        _wait_until_warm(v, 2)  # the worker and its spare
        cold = v._pool.cold_acquires
        for _ in range(2):
            start = time.monotonic()
            assert v.verify("5", HANG).error == f"timeout after {TIMEOUT_S}s"
            assert time.monotonic() - start < TIMEOUT_S + SLACK_S
            start = time.monotonic()
            assert v.verify("5", r"\boxed{5}").correct
            assert time.monotonic() - start < TIMEOUT_S + SLACK_S  # loose: the mechanism is below
            _wait_until_warm(v, 2)
        assert v._pool.cold_acquires == cold  # no call after a timeout waited for a start-up
        assert v._pool.live == 2 and v._pool.busy == 0


def test_no_spare_when_asked_for_none():
    with Verifier(timeout_s=TIMEOUT_S, num_workers=1, spare_workers=0) as v:
        assert v.verify("1", r"\boxed{1}").correct
        assert v._pool.live == 1


def test_timeout_from_a_non_main_thread():
    # math-verify's own timeouts raise ValueError outside the main thread.
    results: list[tuple[Verdict, float]] = []
    with Verifier(timeout_s=TIMEOUT_S, num_workers=1) as v:
        v.verify("1", r"\boxed{1}")

        def run() -> None:
            start = time.monotonic()
            verdict = v.verify("5", HANG)
            results.append((verdict, time.monotonic() - start))
            results.append((v.verify("3", r"\boxed{3}"), 0.0))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=30)
    (hung, elapsed), (ok, _) = results
    assert hung.error == f"timeout after {TIMEOUT_S}s" and elapsed < TIMEOUT_S + SLACK_S
    assert ok.correct and ok.error is None


def test_four_threads_at_once(verifier):
    cases = CASES[:20]
    results: dict[int, list[Verdict]] = {}

    def run(k: int) -> None:
        results[k] = [verifier.verify(g, c) for g, c, _ in cases]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = [e for _, _, e in cases]
    assert len(results) == 4
    for verdicts in results.values():
        assert [v.correct for v in verdicts] == expected
        assert all(v.error is None for v in verdicts if v.correct)


def test_batch_with_a_hanging_item():
    golds = ["1", "2", "3", "4", "5", "6", "7"]
    completions = [rf"\boxed{{{g}}}" for g in golds]
    completions[2] = HANG
    completions[5] = r"\boxed{0}"
    with Verifier(timeout_s=TIMEOUT_S, num_workers=2) as v:
        start = time.monotonic()
        verdicts = v.verify_batch(golds, completions)
        elapsed = time.monotonic() - start
    assert [x.correct for x in verdicts] == [True, True, False, True, True, False, True]
    assert verdicts[2].error == f"timeout after {TIMEOUT_S}s"
    assert [x.extracted_answer for x in verdicts] == [
        "1",
        "2",
        HANG[len(r"\boxed{") : -1],
        "4",
        "5",
        "0",
        "7",
    ]
    # start-up of 2 workers + one timeout + start-up of the replacement, with room to spare
    assert elapsed < 15


def test_batch_with_several_hanging_items_keeps_order():
    golds = [str(i) for i in range(12)]
    completions = [HANG if i % 4 == 1 else rf"\boxed{{{i}}}" for i in range(12)]
    with Verifier(timeout_s=TIMEOUT_S, num_workers=2) as v:
        verdicts = v.verify_batch(golds, completions)
    for i, verdict in enumerate(verdicts):
        if i % 4 == 1:
            assert verdict.error == f"timeout after {TIMEOUT_S}s"
        else:
            assert verdict.correct and verdict.extracted_answer == str(i)


def test_worker_killed_mid_call_gives_crash_verdict():
    with Verifier(timeout_s=30.0, num_workers=1, spare_workers=0) as v:
        v.verify("1", r"\boxed{1}")
        (pid,) = _worker_pids(v)
        killer = threading.Timer(0.5, os.kill, args=(pid, signal.SIGKILL))
        killer.start()
        verdict = v.verify("5", HANG)
        killer.join()
        assert verdict.correct is False
        assert verdict.error.startswith("worker crashed")
        assert v.verify("5", r"\boxed{5}").correct


def test_worker_ignores_sigint(verifier):
    verifier.verify("1", r"\boxed{1}")
    pids = _worker_pids(verifier)
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    assert verifier.verify("2", r"\boxed{2}").correct
    assert pids & _worker_pids(verifier)  # the same worker served the call


@pytest.mark.parametrize("exit_call", ["os._exit(0)", "sys.exit(0)"])
def test_workers_exit_with_the_parent(exit_call):
    script = textwrap.dedent(
        f"""
        import os, sys
        from seele_env.verify import Verifier
        v = Verifier(num_workers=1)
        assert v.verify("1", r"\\boxed{{1}}").correct
        print(*[w.proc.pid for w in v._pool.idle], flush=True)
        {exit_call}
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------------------------------
# Life cycle: close, pickling, validation, module-level verify
# ------------------------------------------------------------------------------------------


def test_close_then_reuse_restarts_lazily():
    v = Verifier(num_workers=1)
    assert v.verify("1", r"\boxed{1}").correct
    pids = _worker_pids(v)
    assert len(pids) == 2  # the worker and its spare
    v.close()
    assert _worker_pids(v) == set()
    assert not any(_alive(pid) for pid in pids)
    assert v.verify("2", r"\boxed{2}").correct
    v.close()


def test_pickle_and_deepcopy(verifier):
    verifier.verify("1", r"\boxed{1}")  # has live workers
    for clone in (pickle.loads(pickle.dumps(verifier)), copy.deepcopy(verifier)):
        assert repr(clone) == repr(verifier)
        assert _worker_pids(clone) == set()
        assert clone.verify("7", r"\boxed{7}").correct
        assert _worker_pids(clone).isdisjoint(_worker_pids(verifier))
        clone.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout_s": 0}, "timeout_s must be a finite number > 0, got 0"),
        ({"timeout_s": float("inf")}, "timeout_s must be a finite number > 0"),
        ({"timeout_s": "5"}, "timeout_s must be a finite number > 0, got '5'"),
        ({"max_completion_chars": 0}, "max_completion_chars must be an int >= 1, got 0"),
        ({"max_answer_chars": 1.5}, "max_answer_chars must be an int >= 1, got 1.5"),
        ({"num_workers": 0}, "num_workers must be an int >= 1 or None"),
        ({"max_memory_mb": 10}, "max_memory_mb must be an int >= 256"),
        ({"spare_workers": -1}, "spare_workers must be an int >= 0, got -1"),
    ],
)
def test_constructor_validation(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Verifier(**kwargs)


def test_batch_length_mismatch_is_a_caller_error(verifier):
    with pytest.raises(ValueError, match="one gold per completion, got 2 golds and 1"):
        verifier.verify_batch(["1", "2"], [r"\boxed{1}"])


def test_batch_of_nothing_and_of_prechecked_items(verifier):
    assert verifier.verify_batch([], []) == []
    assert [v.error for v in verifier.verify_batch(["1", "1"], ["", None])] == [  # type: ignore[list-item]
        "no answer found",
        "completion must be a str, got NoneType",
    ]


def test_module_level_verify():
    assert verify("18", "#### 18").correct
    assert not verify("18", "#### 19").correct
