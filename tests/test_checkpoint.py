"""Checkpoints: exact resume, tied weights, atomic writes, pruning and resume settings."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import transformers

from seele_agents.training.checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    resolve_resume,
    restore_rng_state,
    save_checkpoint,
)

VOCAB = 64


def tiny_llama(seed: int, *, tied: bool = False, layers: int = 1) -> transformers.LlamaForCausalLM:
    """A freshly initialised tiny Llama; ``seed`` fixes its weights."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    return transformers.LlamaForCausalLM(config)


def trainer(model: torch.nn.Module, total_steps: int = 4):
    """AdamW with a linear decay, as a trainer would build them."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 - step / (total_steps + 1)
    )
    return optimizer, scheduler


def train_step(model, optimizer, scheduler, data_generator: torch.Generator) -> None:
    """One update on random tokens: the batch comes from torch's global RNG and a private
    generator, so a resume that forgot either would see other data."""
    ids = torch.randint(0, VOCAB, (4, 8))  # [B, T]
    ids[:, 0] = torch.randint(0, VOCAB, (4,), generator=data_generator)
    loss = model(input_ids=ids, labels=ids).loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --- exact resume --------------------------------------------------------------------------


@pytest.mark.parametrize("restore_rng", [True, False])
def test_resume_continues_bitwise_exactly(tmp_path, restore_rng: bool) -> None:
    # Run A: four steps in one go.
    model_a = tiny_llama(seed=0)
    optimizer, scheduler = trainer(model_a)
    data = torch.Generator().manual_seed(7)
    for _ in range(4):
        train_step(model_a, optimizer, scheduler, data)

    # Run B: two steps, a checkpoint, then fresh objects (another init) load it and go on.
    model_b = tiny_llama(seed=0)
    optimizer, scheduler = trainer(model_b)
    data = torch.Generator().manual_seed(7)
    for _ in range(2):
        train_step(model_b, optimizer, scheduler, data)
    path = save_checkpoint(
        tmp_path,
        2,
        model=model_b,
        optimizer=optimizer,
        scheduler=scheduler,
        state={"curriculum": {"hint_rate": 0.5}},
        extra={"data_generator": data.get_state()},
    )
    del model_b, optimizer, scheduler, data

    model_c = tiny_llama(seed=123)
    optimizer, scheduler = trainer(model_c)
    step, state, extra = load_checkpoint(
        path, model=model_c, optimizer=optimizer, scheduler=scheduler, restore_rng=restore_rng
    )
    assert (step, state) == (2, {"curriculum": {"hint_rate": 0.5}})
    assert scheduler.last_epoch == 2
    data = torch.Generator()
    data.set_state(extra["data_generator"])
    for _ in range(2):
        train_step(model_c, optimizer, scheduler, data)

    if restore_rng:
        assert_same_parameters(model_a, model_c)
    else:  # the test can tell: without the RNGs the data, and so the weights, differ
        with pytest.raises(AssertionError):
            assert_same_parameters(model_a, model_c)


def test_rng_state_round_trips() -> None:
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(state)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])


# --- weights -------------------------------------------------------------------------------


def test_tied_weights_round_trip(tmp_path) -> None:
    model = tiny_llama(seed=0, tied=True)
    path = save_checkpoint(tmp_path, 1, model=model)
    fresh = tiny_llama(seed=5, tied=True)
    load_checkpoint(path, model=fresh)
    assert_same_parameters(model, fresh)
    assert fresh.lm_head.weight.data_ptr() == fresh.model.embed_tokens.weight.data_ptr()


def test_saved_model_loads_with_from_pretrained(tmp_path, hf_tokenizer) -> None:
    model = tiny_llama(seed=0, tied=True)
    path = save_checkpoint(tmp_path, 3, model=model, tokenizer=hf_tokenizer)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(path / "model")
    assert_same_parameters(model, loaded)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path / "model")
    assert tokenizer("Problem: 1 + 1")["input_ids"] == hf_tokenizer("Problem: 1 + 1")["input_ids"]


def test_lora_adapter_round_trip(tmp_path) -> None:
    peft = pytest.importorskip("peft", reason="peft is not installed")

    def lora(seed: int):
        base = tiny_llama(seed=0)
        torch.manual_seed(seed)  # the adapters differ between the two models, the base does not
        config = peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        return peft.get_peft_model(base, config)

    model = lora(seed=1)
    path = save_checkpoint(tmp_path, 1, model=model)
    assert (path / "model" / "adapter_model.safetensors").is_file()
    fresh = lora(seed=2)
    load_checkpoint(path, model=fresh)
    assert_same_parameters(model, fresh)


@pytest.mark.parametrize(
    ("saved", "loaded", "message"),
    [
        ({"layers": 2}, {"layers": 1}, r"has 9 weight\(s\) the model lacks"),
        ({"layers": 1}, {"layers": 2}, r"does not fit the model: model\.layers\.1\..* is missing"),
    ],
)
def test_a_checkpoint_of_another_model_is_refused(tmp_path, saved, loaded, message) -> None:
    path = save_checkpoint(tmp_path, 1, model=tiny_llama(0, **saved))
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path, model=tiny_llama(0, **loaded))
    assert str(path) in str(caught.value)


def test_shape_and_dtype_mismatches_are_refused(tmp_path) -> None:
    path = save_checkpoint(tmp_path, 1, model=tiny_llama(0))
    wider = tiny_llama(0)
    wider.resize_token_embeddings(VOCAB + 8)
    with pytest.raises(CheckpointError, match=r"model\.embed_tokens\.weight has shape \[64, 16\]"):
        load_checkpoint(path, model=wider)
    with pytest.raises(CheckpointError, match=r"is torch\.float32, in the model torch\.bfloat16"):
        load_checkpoint(path, model=tiny_llama(0).to(torch.bfloat16))


def test_optimizer_state_must_have_been_saved_and_fit(tmp_path) -> None:
    model = tiny_llama(0)
    path = save_checkpoint(tmp_path, 1, model=model)
    optimizer, _ = trainer(model)
    with pytest.raises(CheckpointError, match="saved without optimizer state; load it with"):
        load_checkpoint(path, model=model, optimizer=optimizer)
    path = save_checkpoint(tmp_path, 2, model=model, optimizer=optimizer)
    params = list(model.parameters())
    two_groups = torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:]}])
    with pytest.raises(CheckpointError, match=r"optimizer\.pt does not fit the optimizer"):
        load_checkpoint(path, model=model, optimizer=two_groups)


# --- state and layout ----------------------------------------------------------------------


def test_state_json_round_trips(tmp_path) -> None:
    state = {"curriculum": {"rates": {"p1": 0.25}}, "config": {"steps": 3}, "reward": 0.5}
    path = save_checkpoint(tmp_path, 12, model=tiny_llama(0), state=state)
    assert path == checkpoint_path(tmp_path, 12) == tmp_path / "checkpoints" / "step-00000012"
    assert json.loads((path / "state.json").read_text()) == {
        "format": 1,
        "step": 12,
        "state": state,
    }
    assert load_checkpoint(path, model=tiny_llama(1))[:2] == (12, state)
    assert {p.name for p in path.iterdir()} == {"model", "rng.pt", "extra.pt", "state.json"}


def test_state_that_is_not_json_is_refused_before_writing(tmp_path) -> None:
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path, 1, model=tiny_llama(0), state={"rates": {1, 2}})
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


# --- atomicity -----------------------------------------------------------------------------


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("simulated crash while writing extra.pt")


def test_a_failed_save_leaves_nothing_behind(tmp_path) -> None:
    model = tiny_llama(0)
    good = save_checkpoint(tmp_path, 1, model=model)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_checkpoint(tmp_path, 2, model=model, extra={"bad": Unpicklable()})
    assert latest_checkpoint(tmp_path) == good
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000001"]


def test_leftovers_of_a_hard_crash_are_ignored(tmp_path) -> None:
    good = save_checkpoint(tmp_path, 1, model=tiny_llama(0))
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-00000009" / "model").mkdir(parents=True)  # killed while writing
    (root / ".tmp-step-00000009" / "state.json").write_text("{}")
    (root / "step-00000008" / "model").mkdir(parents=True)  # state.json never written
    (root / "notes").mkdir()
    assert latest_checkpoint(tmp_path) == good
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        load_checkpoint(root / "step-00000008", model=tiny_llama(0))
    # The next save of step 9 clears the temporary folder of the crashed one.
    save_checkpoint(tmp_path, 9, model=tiny_llama(0))
    assert not (root / ".tmp-step-00000009").exists()


def test_saving_a_step_again_replaces_it(tmp_path) -> None:
    save_checkpoint(tmp_path, 5, model=tiny_llama(0), state={"version": 1})
    second = tiny_llama(1)
    path = save_checkpoint(tmp_path, 5, model=second, state={"version": 2})
    fresh = tiny_llama(2)
    assert load_checkpoint(path, model=fresh)[1] == {"version": 2}
    assert_same_parameters(second, fresh)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000005"]


# --- finding, pruning, resuming --------------------------------------------------------------


def test_prune_keeps_the_newest(tmp_path) -> None:
    model = tiny_llama(0)
    paths = [save_checkpoint(tmp_path, step, model=model) for step in (10, 2, 30, 20)]
    assert list_checkpoints(tmp_path) == [paths[1], paths[0], paths[3], paths[2]]  # by step
    assert prune_checkpoints(tmp_path, keep=2) == [paths[1], paths[0]]
    assert list_checkpoints(tmp_path) == [paths[3], paths[2]]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-00000020",
        "step-00000030",
    ]
    assert prune_checkpoints(tmp_path, keep=5) == []
    with pytest.raises(ValueError, match="keep=0 must be an int >= 1"):
        prune_checkpoints(tmp_path, keep=0)


def test_resolve_resume(tmp_path) -> None:
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("auto", tmp_path) is None
    with pytest.raises(CheckpointError, match=r"resume='latest' but .* no complete checkpoint"):
        resolve_resume("latest", tmp_path)
    model = tiny_llama(0)
    first = save_checkpoint(tmp_path, 1, model=model)
    second = save_checkpoint(tmp_path, 2, model=model)
    assert resolve_resume("auto", tmp_path) == resolve_resume("latest", tmp_path) == second
    assert resolve_resume(str(first), tmp_path) == resolve_resume(first, tmp_path) == first
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*step-00000003"):
        resolve_resume(tmp_path / "checkpoints" / "step-00000003", tmp_path)
    with pytest.raises(CheckpointError, match="is not a complete checkpoint"):
        resolve_resume(tmp_path, tmp_path)


def test_a_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nowhere", model=tiny_llama(0))
