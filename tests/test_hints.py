"""Hint splitting, hint length and prompt rendering, checked by hand on real rows."""

from __future__ import annotations

import pytest
from conftest import read_jsonl_rows
from hypothesis import given
from hypothesis import strategies as st

from seele_env.errors import HintError
from seele_env.hints import (
    PLAIN_TEMPLATE,
    R1_TEMPLATE,
    hint_length,
    render_prompt,
    split_sentences,
    split_steps,
    split_units,
)

# -- hint length: l = round(p·|y|), halves up ----------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "n_units", "expected"),
    [
        (0.0, 5, 0),
        (1.0, 5, 5),
        (0.5, 5, 3),  # 2.5 rounds up (Python's round() would give 2)
        (0.5, 4, 2),
        (0.3, 5, 2),  # 1.5 -> 2
        (0.29, 5, 1),  # 1.45 -> 1
        (4 / 5, 5, 4),  # the first-visit rate (|y|-1)/|y| gives back |y|-1
        (2 / 3, 3, 2),
        (1 / 3, 3, 1),
        (0.99, 1, 1),
        (0.49, 1, 0),
        (0.7, 0, 0),
    ],
)
def test_hint_length_by_hand(rate: float, n_units: int, expected: int) -> None:
    assert hint_length(rate, n_units) == expected


@given(st.integers(min_value=1, max_value=500))
def test_first_visit_rate_is_all_but_the_last_unit(n: int) -> None:
    assert hint_length((n - 1) / n, n) == n - 1


@pytest.mark.parametrize("rate", [-0.01, 1.01, float("nan"), float("inf"), "half", None, True])
def test_hint_length_rejects_bad_rates(rate: object) -> None:
    with pytest.raises(HintError, match="hint_rate"):
        hint_length(rate, 5)  # type: ignore[arg-type]


# -- splitting -------------------------------------------------------------------------------------


def test_numbered_steps() -> None:
    text = (
        "Step 1: 7 + 5 = 12\nStep 2: 12 * 3 = 36\nStep 3: 36 - 4 = 32. The answer is \\boxed{32}."
    )
    assert split_steps(text) == [
        "Step 1: 7 + 5 = 12\n",
        "Step 2: 12 * 3 = 36\n",
        "Step 3: 36 - 4 = 32. The answer is \\boxed{32}.",
    ]
    # Sentences split the last step further.
    assert split_sentences(text)[-2:] == ["Step 3: 36 - 4 = 32. ", "The answer is \\boxed{32}."]


def test_markdown_steps_with_preamble_and_multiline_steps() -> None:
    text = "We go step by step.\n**Step 1:** add.\nso 2+2=4\n**Step 2:** double: 8."
    assert split_steps(text) == [
        "We go step by step.\n",
        "**Step 1:** add.\nso 2+2=4\n",
        "**Step 2:** double: 8.",
    ]


def test_numbered_list_must_count_from_one() -> None:
    assert len(split_steps("1. add\n2. multiply\n3. done")) == 3
    # "3." and "7." are not a list of steps: fall back to lines.
    assert split_steps("3. apples\n7. pears") == ["3. apples\n", "7. pears"]


def test_gsm8k_rows_by_hand(shared_data) -> None:
    row0, row3 = read_jsonl_rows(shared_data / "gsm8k" / "test.jsonl", [0, 3])
    assert split_steps(row0["answer"]) == [
        "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n",
        "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u2019s market.\n",
        "#### 18",
    ]
    # The money sign is not taken for inline math: lines stay the units.
    cleaned = "He sprints 3*3=9 times\nSo he runs 9*60=540 meters"
    assert row3["answer"].startswith("He sprints")
    assert split_steps(cleaned) == ["He sprints 3*3=9 times\n", "So he runs 9*60=540 meters"]


def test_math_row_with_display_math_by_hand(shared_data) -> None:
    (row,) = read_jsonl_rows(shared_data / "math" / "test.jsonl", [5])
    steps = split_steps(row["solution"])
    assert "".join(steps) == row["solution"]
    assert [s[:30] for s in steps] == [
        "Factoring the denominator on t",
        "Then, we multiply both sides o",
        "If the linear expression $4x$ ",
        "Substituting $x = 3$, we get $",
        "Likewise, we plug in $x = 5$ t",
        "Substituting $x = 5$, we get $",
        "Therefore, $(A, B) = \\boxed{(-",
    ]
    # Each display \[ ... \] stays inside the sentence that introduces it.
    assert steps[0].endswith("\\frac{B}{x-5}. \\]")
    assert steps[1].endswith("4x = A(x-5) + B(x-3). \\]")


def test_math_row_sentence_ends_inside_inline_and_display_math(shared_data) -> None:
    row40, row77 = read_jsonl_rows(shared_data / "math" / "test.jsonl", [40, 77])
    assert split_steps(row40["solution"]) == [
        "Note that $a^2 = 64$ and $\\sqrt[3]{64} = 4$. ",
        "Therefore, $$\\left(16\\sqrt[3]{a^2}\\right)^{\\frac {1}{3}} = \\left(16 \\times 4"
        "\\right)^{\\frac{1}{3}} = 64^\\frac{1}{3} = \\boxed{4}.$$",
    ]
    steps = split_steps(row77["solution"])
    assert len(steps) == 3
    assert steps[1] == "Thus, $6b = \\frac{54}{b}$, and $b = 3.$\n\n"  # "3.$" ends the sentence


def test_math_test_set_units_reassemble(shared_data) -> None:
    """On all 5000 MATH test solutions, units concatenate back to the solution exactly."""
    import json

    with (shared_data / "math" / "test.jsonl").open(encoding="utf-8") as f:
        solutions = [json.loads(line)["solution"] for line in f]
    for solution in solutions:
        for split in (split_steps, split_sentences):
            units = split(solution)
            assert "".join(units) == solution
            assert all(u.strip() for u in units)


def test_asy_and_environments_kept_whole() -> None:
    text = (
        'Draw it.\n\n[asy]\ndraw((0,0)--(1,1)). label("A. B");\n[/asy]\n\nSo. '
        "We have \\begin{align*} x &= 1. \\\\ y &= 2. \\end{align*} Done."
    )
    units = split_steps(text)
    assert "".join(units) == text
    assert any(u.startswith("[asy]") and u.rstrip().endswith("[/asy]") for u in units)
    assert any("\\begin{align*} x &= 1. \\\\ y &= 2. \\end{align*}" in u for u in units)


def test_abbreviations_decimals_and_lowercase_continuations() -> None:
    assert split_sentences("Use e.g. the sum 3.5 + 1. Then stop.") == [
        "Use e.g. the sum 3.5 + 1. ",
        "Then stop.",
    ]
    assert split_sentences("It is 5 in. long") == ["It is 5 in. long"]


@given(st.text(alphabet=st.sampled_from(list("ab $\\[]{}().!?\n\tSx1")), max_size=200))
def test_units_always_reassemble_and_have_content(text: str) -> None:
    for split in (split_steps, split_sentences):
        units = split(text)
        assert "".join(units) == (text if text.strip() else "")
        assert all(u.strip() for u in units)


def test_split_is_linear_on_hostile_input() -> None:
    # Long runs of newlines, dollars and unclosed openers must not go quadratic.
    hostile = "\n" * 50_000 + "$" * 20_000 + "\\[" + "a. " * 20_000
    units = split_sentences(hostile)
    assert "".join(units) == hostile


# -- units objects and tokens ------------------------------------------------------------------


class WhitespaceTokenizer:
    """A real, minimal tokenizer: one token per whitespace-separated word (with its space)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.inverse: dict[int, str] = {}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        for w in words:
            if w not in self.vocab:
                self.vocab[w] = len(self.vocab)
                self.inverse[self.vocab[w]] = w
        return [self.vocab[w] for w in words if w]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.inverse[i] for i in ids)


def test_token_units_and_prefixes() -> None:
    units = split_units("one two three four", "tokens", WhitespaceTokenizer())
    assert units.n_units == 4
    assert units.pieces == ("one ", "two ", "three ", "four")
    assert units.prefix(0) == ""
    assert units.prefix(2) == "one two "
    assert units.prefix(4) == "one two three four"
    with pytest.raises(HintError, match="hint_len=5"):
        units.prefix(5)


def test_token_units_never_cut_a_character(hf_tokenizer) -> None:
    """Byte-level BPE splits "ö", "€", "√" over several tokens; decoding a prefix that ends
    inside one gives U+FFFD. Such tokens form one unit, so every hint is a real prefix."""
    text = "Größe: 5 € — √2 ≈ 1.41, so x = 7."
    ids = hf_tokenizer.encode(text, add_special_tokens=False)
    assert any(hf_tokenizer.decode(ids[:i]).endswith("\ufffd") for i in range(len(ids)))
    units = split_units(text, "tokens", hf_tokenizer)
    assert units.token_ends[-1] == len(ids) and units.n_units < len(ids)
    prefixes = [units.prefix(k) for k in range(units.n_units + 1)]
    assert all(text.startswith(p) for p in prefixes)
    assert prefixes[-1] == text and "".join(units.pieces) == text
    assert len(set(prefixes)) == len(prefixes)  # every unit adds text


def test_token_units_on_ascii_are_single_tokens(hf_tokenizer) -> None:
    text = "Step 1: 7 + 5 = 12\nStep 2: 12 * 3 = 36. The answer is \\boxed{36}."
    units = split_units(text, "tokens", hf_tokenizer)
    ids = hf_tokenizer.encode(text, add_special_tokens=False)
    assert units.n_units == len(ids) and units.token_ends == tuple(range(1, len(ids) + 1))
    assert units.prefix(3) == hf_tokenizer.decode(ids[:3])


def test_chat_template_of_a_real_tokenizer(hf_tokenizer) -> None:
    prompt, obs = render_prompt(
        "What is 2 + 3?", "Step 1:", template="chat", tokenizer=hf_tokenizer
    )
    assert prompt == (
        "<|user|>What is 2 + 3?\nPlease reason step by step, and put your final answer within "
        "\\boxed{}.\n<|assistant|>"
    )
    assert obs == prompt + "Step 1:"


def test_step_units_prefix_is_a_solution_prefix() -> None:
    solution = "Step 1: a\nStep 2: b\nStep 3: c"
    units = split_units(solution, "steps")
    assert [units.prefix(k) for k in range(4)] == [
        "",
        "Step 1: a\n",
        "Step 1: a\nStep 2: b\n",
        solution,
    ]
    assert split_units(None, "steps").n_units == 0


def test_split_units_errors() -> None:
    with pytest.raises(HintError, match="hint_unit='words'"):
        split_units("x", "words")
    with pytest.raises(HintError, match="needs a tokenizer"):
        split_units("x", "tokens")
    with pytest.raises(HintError, match="needs a tokenizer"):
        split_units("x", "tokens", tokenizer=object())  # type: ignore[arg-type]


# -- rendering ----------------------------------------------------------------------------------


class TinyChat:
    """A real chat-template object: renders role-tagged turns like a HF template would."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)
        return text + ("<|assistant|>" if add_generation_prompt else "")


def test_render_response_placement_r1() -> None:
    prompt, obs = render_prompt("What is 2+2?", "Step 1: 2+2=4\n", template="r1")
    assert prompt == R1_TEMPLATE.replace("{question}", "What is 2+2?")
    assert prompt.endswith("User: What is 2+2?\nAssistant: <think>\n")
    assert obs == prompt + "Step 1: 2+2=4\n"


def test_render_prompt_placement_and_plain_template() -> None:
    prompt, obs = render_prompt("Q?", "Step 1: x", template="plain", placement="prompt")
    assert prompt == obs
    assert prompt == PLAIN_TEMPLATE.replace(
        "{question}",
        "Q?\n\nThe solution starts like this (continue from where it stops):\nStep 1: x",
    )
    # No hint: no header either.
    assert (
        render_prompt("Q?", "", template="plain", placement="prompt")[0]
        == "Problem: Q?\nSolution:\n"
    )


def test_render_custom_format_string_keeps_other_braces() -> None:
    prompt, _ = render_prompt("Find $\\frac{1}{2}$.", template="Q: {question} \\boxed{} A:")
    assert prompt == "Q: Find $\\frac{1}{2}$. \\boxed{} A:"


def test_render_chat_template() -> None:
    prompt, obs = render_prompt(
        "Q?", "Step 1:", template="chat", tokenizer=TinyChat(), system_prompt="Be brief."
    )
    assert prompt == (
        "<|system|>Be brief.<|end|><|user|>Q?\nPlease reason step by step, and put your final "
        "answer within \\boxed{}.<|end|><|assistant|>"
    )
    assert obs == prompt + "Step 1:"


def test_render_errors() -> None:
    with pytest.raises(HintError, match="template='chat' needs a tokenizer"):
        render_prompt("Q?", template="chat")
    with pytest.raises(HintError, match="template='qwen'"):
        render_prompt("Q?", template="qwen")
    with pytest.raises(HintError, match="placement='middle'"):
        render_prompt("Q?", placement="middle")
