"""Hints: split a reference solution into units, take a prefix for a hint rate, render prompts.

A reference solution ``y`` is split into ``|y|`` units; the hint for rate ``p`` is the first
``l = round(p·|y|)`` units (SEELE, section 1 of DESIGN.md). Text units are spans of the
solution, so ``"".join(units) == solution`` always holds and a hint is an exact prefix of the
solution — an agent can force it as the start of the model's answer.

Unit kinds:

* ``"steps"`` — numbered steps (``Step k:``, ``1.``) when the solution has them; else lines when
  the solution is line-structured (GSM8K); else sentences, with display math, ``\\begin…\\end``
  environments and ``[asy]`` blocks kept whole (MATH-style prose).
* ``"sentences"`` — sentences everywhere (lines are split further).
* ``"tokens"`` — tokens of any tokenizer object with ``encode``/``decode``.

Example:
    >>> split_steps("Step 1: 2 + 3 = 5\\nStep 2: 5 * 4 = 20. The answer is \\\\boxed{20}.")
    ['Step 1: 2 + 3 = 5\\n', 'Step 2: 5 * 4 = 20. The answer is \\\\boxed{20}.']
    >>> hint_length(0.5, 5)
    3
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from seele_env.errors import HintError

UNITS = ("steps", "sentences", "tokens")
PLACEMENTS = ("response", "prompt")


@runtime_checkable
class Tokenizer(Protocol):
    """What ``hint_unit="tokens"`` needs: any object with ``encode`` and ``decode``.

    Hugging Face tokenizers qualify; ``encode`` is called with ``add_special_tokens=False`` when
    it accepts that keyword.
    """

    def encode(self, text: str, /, *args: Any, **kwargs: Any) -> Sequence[int]: ...

    def decode(self, ids: Sequence[int], /, *args: Any, **kwargs: Any) -> str: ...


@runtime_checkable
class ChatTokenizer(Protocol):
    """What ``template="chat"`` needs: an object with ``apply_chat_template`` (a HF tokenizer)."""

    def apply_chat_template(self, conversation: Any, /, *args: Any, **kwargs: Any) -> Any: ...


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------

_STEP_MARKER = re.compile(r"(?m)^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*)?[Ss][Tt][Ee][Pp][ \t]*(\d+)")
_LIST_MARKER = re.compile(r"(?m)^[ \t]*(\d+)[.)][ \t]")
_DISPLAY_OPENERS = ("\\[", "$$", "\\begin{")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Mr.", "Mrs.", "Ms.", "Dr.", "St.", "No.")


def _numbered_starts(text: str) -> list[int] | None:
    """Line-start offsets of numbered steps ``1, 2, 3, …`` (at least two), or ``None``."""
    for pattern in (_STEP_MARKER, _LIST_MARKER):
        matches = list(pattern.finditer(text))
        numbers = [int(m.group(1)) for m in matches]
        if len(matches) >= 2 and numbers == list(range(1, len(numbers) + 1)):
            # The span starts at the beginning of the marker's line.
            return [text.rfind("\n", 0, m.start()) + 1 for m in matches]
    return None


def _is_line_structured(text: str) -> bool:
    """GSM8K-style: several lines and no display math, so each line is one step."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    return len(lines) >= 2 and not any(opener in text for opener in _DISPLAY_OPENERS)


def _math_end(text: str, i: int) -> tuple[int, bool] | None:
    """If a math/verbatim region opens at ``i``, return (index just past its end, is_display)."""
    if text.startswith("[asy]", i):
        end = text.find("[/asy]", i + 5)
        return (len(text) if end < 0 else end + 6), True
    if text.startswith("\\begin{", i):
        close = text.find("}", i + 7)
        if close < 0:
            return None
        name = text[i + 7 : close]
        end = text.find(f"\\end{{{name}}}", close)
        return (len(text) if end < 0 else end + len(name) + 6), True
    if text.startswith("\\[", i) or text.startswith("\\(", i):
        closer = "\\]" if text[i + 1] == "[" else "\\)"
        end = text.find(closer, i + 2)
        return (len(text) if end < 0 else end + 2), text[i + 1] == "["
    if text.startswith("$$", i):
        end = text.find("$$", i + 2)
        return (len(text) if end < 0 else end + 2), True
    if text[i] == "$" and (i == 0 or text[i - 1] != "\\"):
        j = i + 1
        while j < len(text):
            if text[j] == "$" and text[j - 1] != "\\":
                return j + 1, False
            if text.startswith("\n\n", j):
                return None  # a lone dollar sign (money), not math
            j += 1
        return None
    return None


def _ends_sentence(fragment: str) -> bool:
    stripped = fragment.rstrip()
    return bool(stripped) and stripped[-1] in ".!?"


def _split_prose(text: str, split_lines: bool) -> list[str]:
    """Split at sentence ends, paragraph breaks and (optionally) line breaks, outside math.

    One linear pass: math regions are skipped whole, so a period inside ``$…$`` or a display
    never splits, while a math region that itself ends a sentence (``$b = 3.$``) does.
    """
    cuts: list[int] = []
    i, n = 0, len(text)
    while i < n:
        region = _math_end(text, i) if text[i] in "$\\[" else None
        if region is not None:
            end, _ = region
            after = _skip_space(text, end)
            if _ends_sentence(text[i:end].rstrip("$])").rstrip("\\")) and not _lower_at(
                text, after
            ):
                cuts.append(after)
            i = end
            continue
        ch = text[i]
        if ch == "\n" and (split_lines or text.startswith("\n\n", i)):
            i = _skip_space(text, i)
            cuts.append(i)
            continue
        if ch in ".!?" and not _is_abbreviation(text, i):
            after = _skip_space(text, i + 1)
            # "3.5" has no space after the period; "etc. and" goes on in lower case.
            if after > i + 1 and not _lower_at(text, after):
                cuts.append(after)
                i = after
                continue
        i += 1
    pieces, start = [], 0
    for cut in sorted(set(cuts)):
        if start < cut < n:
            pieces.append(text[start:cut])
            start = cut
    pieces.append(text[start:])
    return _merge_blank(pieces)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _lower_at(text: str, pos: int) -> bool:
    return pos < len(text) and text[pos].islower()


def _is_abbreviation(text: str, i: int) -> bool:
    return any(text.endswith(abbr, 0, i + 1) for abbr in _ABBREVIATIONS)


def _merge_blank(pieces: list[str]) -> list[str]:
    """Attach whitespace-only pieces to a neighbour so every unit has content."""
    merged: list[str] = []
    for piece in pieces:
        if merged and not (piece.strip() and merged[-1].strip()):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def _split_at(text: str, starts: list[int]) -> list[str]:
    bounds = sorted({0, *starts, len(text)})
    return _merge_blank([text[a:b] for a, b in itertools.pairwise(bounds) if a < b])


def split_steps(solution: str) -> list[str]:
    """Split a solution into steps; ``"".join(result) == solution``.

    Numbered steps win (``Step 1:``, ``**Step 2**``, ``1.``/``2)`` lists numbered from 1); then
    lines for line-structured text (GSM8K); then sentences with math kept whole (MATH).

    Example:
        >>> split_steps("He runs 3*3=9 times\\nSo he runs 9*60=540 meters")
        ['He runs 3*3=9 times\\n', 'So he runs 9*60=540 meters']
    """
    if not solution.strip():
        return []
    starts = _numbered_starts(solution)
    if starts is not None:
        return _split_at(solution, starts)
    return _split_prose(solution, split_lines=_is_line_structured(solution))


def split_sentences(solution: str) -> list[str]:
    """Split a solution into sentences (and lines, for line-structured text) with math kept whole.

    Example:
        >>> split_sentences("So $x = 2$. Then $y = 3$.")
        ['So $x = 2$. ', 'Then $y = 3$.']
    """
    if not solution.strip():
        return []
    line_mode = _is_line_structured(solution) or _numbered_starts(solution) is not None
    return _split_prose(solution, split_lines=line_mode)


def _encode(tokenizer: Tokenizer, text: str) -> list[int]:
    try:
        ids = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:  # a plain tokenizer without the Hugging Face keyword
        ids = tokenizer.encode(text)
    return [int(i) for i in ids]


@dataclass(frozen=True)
class SolutionUnits:
    """A solution split into units, able to produce the hint text for any hint length.

    Attributes:
        unit: ``"steps"``, ``"sentences"`` or ``"tokens"``.
        pieces: The units as text. For text units they concatenate to the solution; for tokens
            each is its tokens decoded on their own (for display; hints decode the whole prefix).
        token_ids: The solution's token ids for ``unit="tokens"``, else ``None``.
        token_ends: For ``unit="tokens"``: how many tokens the first ``k + 1`` units hold. A
            unit is one token, except that the tokens of one multi-byte character (byte-level
            BPE splits "ö" or "€" over several) form one unit, so no hint ends inside a
            character.
    """

    unit: str
    pieces: tuple[str, ...]
    token_ids: tuple[int, ...] | None = None
    token_ends: tuple[int, ...] | None = None
    tokenizer: Tokenizer | None = None

    @property
    def n_units(self) -> int:
        """``|y|``: the number of units."""
        return len(self.pieces)

    def prefix(self, hint_len: int) -> str:
        """The hint text made of the first ``hint_len`` units."""
        if not 0 <= hint_len <= self.n_units:
            raise HintError(
                f"hint_len={hint_len} is outside [0, {self.n_units}] for this solution."
            )
        if hint_len == 0:
            return ""
        if self.token_ends is not None and self.token_ids is not None:
            assert self.tokenizer is not None  # set together with the token ids
            return self.tokenizer.decode(list(self.token_ids[: self.token_ends[hint_len - 1]]))
        return "".join(self.pieces[:hint_len])


# A UTF-8 character is at most 4 bytes and a byte-level token holds at least one, so the last
# 4 tokens always contain the start of an unfinished character.
_UTF8_MAX_BYTES = 4


def _token_units(text: str, tokenizer: Tokenizer) -> SolutionUnits:
    """Token units whose boundaries never fall inside a character (O(n) short decodes)."""
    ids = _encode(tokenizer, text) if text.strip() else []
    ends: list[int] = []
    trust_all = "\ufffd" in text  # the text itself has replacement characters: cannot tell
    for i in range(1, len(ids) + 1):
        tail = tokenizer.decode(ids[max(0, i - _UTF8_MAX_BYTES) : i])
        if trust_all or not tail.endswith("\ufffd") or i == len(ids):
            ends.append(i)
    starts = [0, *ends[:-1]]
    pieces = tuple(tokenizer.decode(ids[a:b]) for a, b in zip(starts, ends, strict=True))
    return SolutionUnits("tokens", pieces, tuple(ids), tuple(ends), tokenizer)


def split_units(
    solution: str | None, unit: str = "steps", tokenizer: Tokenizer | None = None
) -> SolutionUnits:
    """Split ``solution`` into units of kind ``unit`` (see the module docstring).

    Raises:
        HintError: unknown ``unit``, or ``unit="tokens"`` without a usable tokenizer.
    """
    if unit not in UNITS:
        raise HintError(f"hint_unit={unit!r} is not one of {UNITS}; pick one of those.")
    text = solution or ""
    if unit == "steps":
        return SolutionUnits(unit, tuple(split_steps(text)))
    if unit == "sentences":
        return SolutionUnits(unit, tuple(split_sentences(text)))
    if tokenizer is None or not isinstance(tokenizer, Tokenizer):
        raise HintError(
            f"hint_unit='tokens' needs a tokenizer with encode() and decode(), got {tokenizer!r}; "
            "pass tokenizer=AutoTokenizer.from_pretrained(...) or use hint_unit='steps'."
        )
    return _token_units(text, tokenizer)


def hint_length(hint_rate: float, n_units: int) -> int:
    """``l = round(p·|y|)``, rounding halves up so the result does not depend on parity.

    Example:
        >>> [hint_length(p, 4) for p in (0.0, 0.125, 0.5, 0.75, 1.0)]
        [0, 1, 2, 3, 4]
    """
    check_hint_rate(hint_rate)
    if n_units < 0:
        raise HintError(f"n_units={n_units} must be >= 0.")
    # The 1e-9 guards against p·|y| landing a hair under .5 in floating point, e.g. (|y|-1)/|y|.
    return min(n_units, math.floor(hint_rate * n_units + 0.5 + 1e-9))


def check_hint_rate(hint_rate: object) -> float:
    """Return ``hint_rate`` as a float, or raise a clear error if it is not a number in [0, 1]."""
    if isinstance(hint_rate, (bool, str)) or hint_rate is None:
        raise HintError(f"hint_rate={hint_rate!r} is not a number; pass a float in [0, 1].")
    try:
        value = float(hint_rate)  # type: ignore[arg-type]  (ints, floats, numpy scalars)
    except (TypeError, ValueError):
        raise HintError(
            f"hint_rate={hint_rate!r} is not a number; pass a float in [0, 1]."
        ) from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise HintError(
            f"hint_rate={hint_rate!r} is outside [0, 1]; it is the share of the solution revealed "
            "(0 = no hint, 1 = the whole solution)."
        )
    return value


# ---------------------------------------------------------------------------------------------
# Prompt rendering
# ---------------------------------------------------------------------------------------------

R1_TEMPLATE = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant "
    "solves it. The Assistant first thinks about the reasoning process in the mind and then "
    "provides the User with the answer. The reasoning process is enclosed within <think> "
    "</think> and the answer is enclosed within <answer> </answer> tags, i.e., <think> "
    "reasoning process here </think> <answer> answer here </answer>.\n"
    "User: {question}\n"
    "Assistant: <think>\n"
)
PLAIN_TEMPLATE = "Problem: {question}\nSolution:\n"
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PROMPT_HINT_HEADER = "\n\nThe solution starts like this (continue from where it stops):\n"

TEMPLATES: dict[str, str] = {"r1": R1_TEMPLATE, "plain": PLAIN_TEMPLATE}


def _question_with_hint(question: str, hint_text: str, placement: str) -> str:
    if placement == "prompt" and hint_text:
        return question + PROMPT_HINT_HEADER + hint_text
    return question


def render_prompt(
    question: str,
    hint_text: str = "",
    *,
    template: str = "r1",
    placement: str = "response",
    tokenizer: ChatTokenizer | None = None,
    system_prompt: str | None = None,
) -> tuple[str, str]:
    """Render a problem (and its hint) as text for a model.

    Args:
        question: The problem statement.
        hint_text: The hint (a prefix of the reference solution); ``""`` for none.
        template: ``"r1"`` (the R1-Zero conversation, the paper's), ``"plain"``
            (``Problem: …\\nSolution:\\n``), ``"chat"`` (the tokenizer's chat template with the
            question and a ``\\boxed{}`` instruction as the user turn), or any string containing
            ``{question}`` (filled by plain replacement, so other braces are kept).
        placement: ``"response"`` — the hint begins the assistant's answer (the observation is
            ``prompt + hint_text``); ``"prompt"`` — the hint is appended to the problem inside
            the prompt.
        tokenizer: Required for ``template="chat"``: an object with ``apply_chat_template``.
        system_prompt: Optional system turn for ``template="chat"``.

    Returns:
        ``(prompt, observation)``: the prompt before any response-side hint, and the full text
        the model continues from.
    """
    if placement not in PLACEMENTS:
        raise HintError(f"placement={placement!r} is not one of {PLACEMENTS}.")
    content = _question_with_hint(question, hint_text, placement)
    prompt = _TEMPLATE_RENDERERS.get(template, _render_format)(
        content, template, tokenizer, system_prompt
    )
    observation = prompt + hint_text if placement == "response" else prompt
    return prompt, observation


def _render_format(content: str, template: str, *_: object) -> str:
    if "{question}" not in template:
        raise HintError(
            f"template={template!r} is neither a known template {(*TEMPLATES, 'chat')} nor a "
            "format string containing '{question}'."
        )
    return template.replace("{question}", content)


def _render_named(content: str, template: str, *_: object) -> str:
    return TEMPLATES[template].replace("{question}", content)


def _render_chat(
    content: str, _template: str, tokenizer: ChatTokenizer | None, system_prompt: str | None
) -> str:
    if tokenizer is None or not isinstance(tokenizer, ChatTokenizer):
        raise HintError(
            f"template='chat' needs a tokenizer with apply_chat_template(), got {tokenizer!r}; "
            "pass tokenizer=AutoTokenizer.from_pretrained(...) or use template='r1'."
        )
    messages = [{"role": "user", "content": f"{content}\n{BOXED_INSTRUCTION}"}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(rendered, str):
        raise HintError(f"apply_chat_template returned {type(rendered).__name__}, expected str.")
    return rendered


_TEMPLATE_RENDERERS: dict[str, Callable[[str, str, Any, Any], str]] = {
    "r1": _render_named,
    "plain": _render_named,
    "chat": _render_chat,
}


@dataclass(frozen=True)
class Rendering:
    """How a problem and its hint become the text a model sees: the one set of options the
    training env, the evaluation env and ``seele eval`` share.

    Attributes:
        hint_unit: ``"steps"``, ``"sentences"`` or ``"tokens"`` (needs ``tokenizer``).
        placement: ``"response"`` (the hint starts the answer) or ``"prompt"``.
        template: ``"r1"``, ``"plain"``, ``"chat"`` (needs ``tokenizer``) or a format string
            containing ``{question}``.
        tokenizer: Any object with ``encode``/``decode`` (token units) and/or
            ``apply_chat_template`` (the chat template). Never imported here.
        system_prompt: System turn for ``template="chat"``.

    Example:
        >>> rendering = Rendering(template="plain")
        >>> rendering.render("Compute 2 + 3.", "Step 1: 2 + 3 = 5\\n")
        ('Problem: Compute 2 + 3.\\nSolution:\\n', 'Problem: Compute 2 + 3.\\nSolution:\\nStep 1: 2 + 3 = 5\\n')
        >>> rendering.units("Step 1: 2 + 3 = 5\\nStep 2: the answer is 5.").n_units
        2
    """  # noqa: E501

    hint_unit: str = "steps"
    placement: str = "response"
    template: str = "r1"
    tokenizer: Any = None
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.hint_unit not in UNITS:
            raise HintError(
                f"hint_unit={self.hint_unit!r} is not one of {UNITS}; pick one of those."
            )
        if self.placement not in PLACEMENTS:
            raise HintError(f"placement={self.placement!r} is not one of {PLACEMENTS}.")

    def render(self, question: str, hint_text: str = "") -> tuple[str, str]:
        """``(prompt, observation)`` of :func:`render_prompt` with these options."""
        return render_prompt(
            question,
            hint_text,
            template=self.template,
            placement=self.placement,
            tokenizer=self.tokenizer,
            system_prompt=self.system_prompt,
        )

    def units(self, solution: str | None) -> SolutionUnits:
        """A reference solution split into this rendering's hint units."""
        return split_units(solution, self.hint_unit, self.tokenizer)
