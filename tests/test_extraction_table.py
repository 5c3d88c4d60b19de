"""The final-answer table: our verifier against plain math-verify on the same rows.

Each row is (gold, completion, expected verdict). Plain math-verify is run as a careful user
would: ``verify(parse(f"${gold}$"), parse(completion))`` in the main thread (its timeouts use
SIGALRM). The rows cover how models state answers: boxed, "the answer is ...", fractions,
negatives, decimals, LaTeX, thousands separators, units, several numbers, wrong answers that must
stay wrong, and empty output. We must be right on every row, so in particular never wrong where
plain math-verify is right.
"""

from __future__ import annotations

import pytest

from seele_env.verify import Verifier

math_verify = pytest.importorskip("math_verify", reason="math-verify is not installed")

TABLE = [
    # "The answer is ..." followed by words, punctuation or an aside (issue 15)
    ("18", "The answer is 18 eggs.", True),
    ("18", "The answer is $18$, which matches.", True),
    ("18", "The answer is 18, since 9*2 = 18.", True),
    ("18", "The answer is 18 (eighteen).", True),
    ("18", "The answer is 18!", True),
    ("18", "So the final answer is 18.", True),
    ("18", "The answer is: 18", True),
    ("18", "the answer is **18**.", True),
    ("18", "The answer is \\$18.", True),
    ("18", "The answer is 18 dollars.", True),
    ("18", "Thus, the answer is 18 because 20 - 2 = 18.", True),
    ("18", "The answer is 18.\n\nI hope it is correct.", True),
    ("18", "Janet makes $18 every day. The answer is $18.", True),
    ("18", "The answer is 17 eggs.", False),
    ("18", "The answer is 81.", False),
    ("18", "The answer is 180.", False),
    ("18", "The answer is 1.8.", False),
    ("18", "The answer is -18.", False),
    # boxed answers, and a later explicit statement against an earlier box
    ("18", "\\boxed{18}", True),
    ("18", "We get $\\boxed{18}$.", True),
    ("18", "The final answer is $\\boxed{18}$", True),
    ("18", "First \\boxed{12}, then correcting: \\boxed{18}", True),
    ("18", "Half of it is \\boxed{9}. Doubling, so the final answer is 18.", True),
    ("9", "Half of it is \\boxed{9}. Doubling, so the final answer is 18.", False),
    ("18", "The answer is 9. No wait, let me recheck: \\boxed{18}", True),
    ("18", "\\boxed{18} is what we get. So the answer is as above.", True),
    ("18", "\\boxed{17}", False),
    # fractions
    ("\\frac{1}{2}", "\\boxed{\\frac12}", True),
    ("\\frac{1}{2}", "The answer is $\\frac{1}{2}$.", True),
    ("\\frac{1}{2}", "The answer is 1/2.", True),
    ("\\frac{1}{2}", "\\boxed{0.5}", True),
    ("\\frac{1}{2}", "\\boxed{\\dfrac{1}{2}}", True),
    ("\\frac{1}{2}", "Probability = 1/2.\nThe answer is \\frac{1}{2}", True),
    ("\\frac{3}{4}", "The answer is 3/4 of the cake.", True),
    ("\\frac{1}{2}", "The answer is $\\frac{1}{3}$.", False),
    ("\\frac{1}{2}", "The answer is 2.", False),
    # negatives
    ("-5", "\\boxed{-5}", True),
    ("-5", "The answer is -5.", True),
    ("-5", "The answer is $-5$, a negative number.", True),
    ("-5", "\\boxed{5}", False),
    # decimals
    ("3.5", "The answer is 3.5.", True),
    ("3.5", "The answer is 3.50 meters.", True),
    ("3.5", "\\boxed{3.5}", True),
    ("0.25", "The answer is 0.25, i.e. a quarter.", True),
    ("3.5", "The answer is 35.", False),
    # LaTeX
    ("\\sqrt{2}", "\\boxed{\\sqrt{2}}", True),
    ("2\\sqrt{3}", "The answer is $2\\sqrt{3}$.", True),
    ("\\pi", "The answer is $\\pi$.", True),
    ("x^2+1", "\\boxed{1+x^2}", True),
    ("(1,2)", "\\boxed{(1,2)}", True),
    ("[1,2]", "\\boxed{(1,2]}", False),
    ("\\sqrt{2}", "The answer is $\\sqrt{3}$.", False),
    ("5", "\\boxed{x=5}", True),
    ("5", "The answer is $x = 5$.", True),
    # thousands separators
    ("1000", "The answer is 1,000.", True),
    ("1000", "\\boxed{1,000}", True),
    ("12345", "The answer is 12,345 people.", True),
    ("1000", "The answer is $1{,}000$.", True),
    ("1000", "The answer is 1,001.", False),
    # units
    ("5", "The answer is 5 cm.", True),
    ("5", "The answer is $5\\text{ cm}$.", True),
    ("30", "\\boxed{30^\\circ}", True),
    ("10", "The answer is 10\\%.", True),
    ("60", "The answer is 60 minutes (1 hour).", True),
    # several numbers in the text
    ("18", "16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars. The answer is 18.", True),
    ("18", "We have 3 + 4 = 7 and 7 + 11 = 18. So the answer is 18.", True),
    ("7", "We have 3 + 4 = 7 and 7 + 11 = 18. So the answer is 18.", False),
    ("18", "The answer is 18 and not 19.", True),
    ("3", "There are 3 apples and 4 pears, so the answer is 3 apples.", True),
    # other explicit formats
    ("18", "9 * 2 = 18\n#### 18", True),
    ("18", "#### 17", False),
    ("18", "<answer>18</answer>", True),
    ("18", "<answer>19</answer>", False),
    # no answer
    ("18", "", False),
    ("18", "I don't know.", False),
    ("18", "\\boxed{}", False),
    ("18", "The answer is", False),
]


def plain_math_verify(gold: str, completion: str) -> bool:
    """Plain math-verify, main thread, its own extraction of the whole completion."""
    try:
        return bool(
            math_verify.verify(math_verify.parse(f"${gold}$"), math_verify.parse(completion))
        )
    except Exception:  # a failure to parse or compare is a wrong verdict, as for a grader
        return False


@pytest.fixture(scope="module")
def ours():
    with Verifier(timeout_s=10.0) as verifier:
        yield verifier


def test_the_table_has_enough_rows() -> None:
    assert len(TABLE) >= 60
    assert len({(g, c) for g, c, _ in TABLE}) == len(TABLE)


@pytest.mark.parametrize(("gold", "completion", "expected"), TABLE)
def test_ours_is_right_and_never_worse_than_math_verify(ours, gold, completion, expected) -> None:
    verdict = ours.verify(gold, completion)
    plain = plain_math_verify(gold, completion)
    assert not (plain == expected and verdict.correct != expected), (
        "math-verify is right, we are not"
    )
    assert verdict.correct == expected, verdict


def score_table(verifier: Verifier) -> dict[str, int]:
    """Rows right, ours and plain math-verify's (for the report in docs/verifier.md)."""
    ours_right = sum(verifier.verify(g, c).correct == e for g, c, e in TABLE)
    plain_right = sum(plain_math_verify(g, c) == e for g, c, e in TABLE)
    return {"rows": len(TABLE), "ours": ours_right, "math_verify": plain_right}
