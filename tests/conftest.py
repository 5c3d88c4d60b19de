"""Shared fixtures: where the real datasets are (``../shared/data`` beside the repo)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("SEELE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets folder; tests that need it skip (saying why) where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set SEELE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hf_tokenizer():
    """A real Hugging Face fast tokenizer: byte-level BPE trained here on procedural problems
    (under a second, no downloads), with a small chat template."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from seele_env import generate_problems

    problems = generate_problems(300, seed=0)
    corpus = [p.question for p in problems] + [p.solution for p in problems]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    hf.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return hf


def read_jsonl_rows(path: Path, indices: list[int]) -> list[dict]:
    """Rows at ``indices`` of a JSONL file, read directly (independent of our loaders)."""
    wanted, rows = set(indices), {}
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i in wanted:
                rows[i] = json.loads(line)
            if len(rows) == len(wanted):
                break
    return [rows[i] for i in indices]
