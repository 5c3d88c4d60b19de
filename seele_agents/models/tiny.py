"""The embedded tiny model: a small Llama and a byte-level BPE tokenizer, built locally.

For the CPU demo and the tests: no downloads, seconds to build, deterministic per seed. The
tokenizer is a byte-level BPE (any Unicode text round-trips) trained with the ``tokenizers``
library on :func:`default_corpus`; digits are always single tokens, so a number is spelled the
same way wherever it appears (a tiny model learns column arithmetic far more easily than a table
of irregular multi-digit tokens). The model is a freshly initialised ``LlamaForCausalLM`` in
float32 whose config and ``generation_config`` carry the tokenizer's end-of-sequence and padding
ids. Both save and load with ``save_pretrained`` / ``from_pretrained``.

The tokenizer adds no special tokens on its own: prompts carry none and a trainer appends
``tokenizer.eos_token_id`` after a response itself.

Example:
    >>> config = TinyConfig(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)
    >>> model, tokenizer = build_tiny(seed=0, config=config)
    >>> text = "Problem: Compute 12 + 7.\\nSolution:\\n"
    >>> tokenizer.decode(tokenizer(text)["input_ids"]) == text
    True
    >>> tokenizer.convert_ids_to_tokens(tokenizer("127")["input_ids"])
    ['1', '2', '7']
    >>> model.config.eos_token_id == tokenizer.eos_token_id != tokenizer.pad_token_id
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from seele_env.hints import render_prompt
from seele_env.procedural import DEFAULT_FAMILIES, generate_problems

EOS_TOKEN = "<|endoftext|>"
"""End of sequence: ends every response the model is trained on."""

PAD_TOKEN = "<|pad|>"
"""Padding, distinct from :data:`EOS_TOKEN` so a padded batch never looks like a finished one."""

# Problems per (family, difficulty) cell of the default corpus: enough for every word, name and
# phrase of the generator to appear many times, while BPE training stays well under a second.
_CORPUS_PER_CELL = 40
_CORPUS_DIFFICULTIES = (1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the tiny model and its tokenizer; the defaults are the CPU demo's model.

    The defaults (about 0.24M parameters) were calibrated for a 2-core CPU: in a fixed ~100 s
    of supervised warm-up, this width trained for more steps beat wider models trained for
    fewer (0.5M and 0.9M were no better), and it samples ~15k tokens/s at batch 128, which
    leaves room for RL in the demo's time budget.

    Attributes:
        vocab_size: Target size of the BPE vocabulary, special tokens included. Training stops
            early when the corpus offers no more merges, so the real size (``len(tokenizer)``,
            which the model uses) can be smaller.
        hidden_size: Width of the residual stream.
        intermediate_size: Width of the SwiGLU feed-forward layer.
        num_layers: Number of decoder layers.
        num_heads: Attention heads per layer (no grouped-query attention); must divide
            ``hidden_size``.
        max_position_embeddings: Longest sequence (prompt + response) in tokens.
        tie_word_embeddings: Share the input embedding and the output projection.
        initializer_range: Standard deviation of the normal weight initialisation.
    """

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TinyConfig.{name}={value!r} must be an int >= 1.")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"TinyConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_heads={self.num_heads}; pick a head count that divides it."
            )
        if self.vocab_size < 260:
            raise ValueError(
                f"TinyConfig.vocab_size={self.vocab_size} is too small: a byte-level BPE needs "
                "256 byte tokens plus the special tokens; use at least 260."
            )


def default_corpus(seed: int = 0) -> list[str]:
    """Texts to train the tokenizer on: procedural problems and the plain prompt template.

    Questions and worked solutions of every default family at difficulties 1 to 6, plus each
    question rendered with the plain template, so ``Problem:`` / ``Solution:`` get tokens too.

    Args:
        seed: Seed of the procedural generator.

    Returns:
        About 1,400 short texts.

    Example:
        >>> corpus = default_corpus()
        >>> corpus[0]
        'Problem: Compute (9 * 3) - 4.\\nSolution:\\n'
    """
    texts: list[str] = []
    for i, difficulty in enumerate(_CORPUS_DIFFICULTIES):
        problems = generate_problems(
            _CORPUS_PER_CELL * len(DEFAULT_FAMILIES),
            seed=seed * 1000 + i,
            families=DEFAULT_FAMILIES,
            difficulty=difficulty,
        )
        for problem in problems:
            prompt, _ = render_prompt(problem.question, "", template="plain")
            texts += [prompt, problem.question, problem.solution or ""]
    return texts


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``.

    Every byte is in the initial alphabet, so any Unicode text encodes and decodes back
    exactly. Digits are split into single tokens before BPE. Training is deterministic: the
    same texts and size give the same vocabulary and merges.

    Args:
        texts: Training texts, e.g. :func:`default_corpus`.
        vocab_size: Target vocabulary size, special tokens included (at least 260).

    Returns:
        A fast tokenizer with ``eos_token="<|endoftext|>"`` and a distinct
        ``pad_token="<|pad|>"``, adding no special tokens when encoding.

    Raises:
        ValueError: If ``vocab_size`` is below 260.

    Example:
        >>> tokenizer = build_tokenizer(["Step 1: 2 + 3 = 5."], vocab_size=300)
        >>> tokenizer.decode(tokenizer("∫ x² dx = \\\\frac{x^3}{3}")["input_ids"])
        '∫ x² dx = \\\\frac{x^3}{3}'
    """
    if not isinstance(vocab_size, int) or vocab_size < 260:
        raise ValueError(
            f"vocab_size={vocab_size!r} is too small: a byte-level BPE needs 256 byte tokens "
            "plus the special tokens; use at least 260."
        )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # One digit per piece, a leading space kept with it (" 27" -> " 2", "7").
            pre_tokenizers.Split(Regex(r" ?\p{N}"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # A list, not a generator: the trainer's result must not depend on how texts are chunked.
    bpe.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, padding_side="right"
    )


def build_tiny(
    seed: int = 0, config: TinyConfig | None = None
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A freshly initialised tiny Llama (float32, eval mode) and its tokenizer.

    The tokenizer is trained on ``default_corpus(0)`` whatever the seed, so models built with
    different seeds share one vocabulary; ``seed`` sets the initial weights only (drawn under
    a forked RNG: the global torch RNG is left as it was).

    Args:
        seed: Seed of the weight initialisation.
        config: Model shape; :class:`TinyConfig` defaults when ``None``.

    Returns:
        ``(model, tokenizer)``; the model's config and ``generation_config`` carry the
        tokenizer's ``eos_token_id`` and ``pad_token_id``.

    Example:
        >>> config = TinyConfig(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)
        >>> model, _ = build_tiny(seed=1, config=config)
        >>> model.dtype, model.training
        (torch.float32, False)
    """
    config = config or TinyConfig()
    tokenizer = build_tokenizer(default_corpus(0), vocab_size=config.vocab_size)
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        initializer_range=config.initializer_range,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama_config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        do_sample=False,
    )
    model.eval()
    return model, tokenizer
