"""Data-parallel training on 2 CPU processes (gloo), DDP and FSDP: the ranks take the step one
process takes on the same global batch; a run resumes at another number of processes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import seele_env  # noqa: E402, F401
from seele_agents.algos.returns import whiten  # noqa: E402
from seele_agents.config import load_config  # noqa: E402
from seele_agents.generation import SamplingParams, TransformersGenerator  # noqa: E402
from seele_agents.models.tiny import build_tiny  # noqa: E402
from seele_agents.training.build import make_learner  # noqa: E402
from seele_agents.training.distributed import (  # noqa: E402
    World,
    all_gather_objects,
    check_in_sync,
    reduce_metrics,
    shard,
    shard_model,
)
from seele_agents.training.rollout import RolloutBatch, collect_rollouts  # noqa: E402

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="this torch build has no torch.distributed gloo backend",
)

WORLD = 2
PROBLEMS = 4  # per step, over both ranks

# -- one process --------------------------------------------------------------------------------


def test_shard_splits_contiguously_and_refuses_uneven_splits():
    items = list(range(6))
    assert [shard(items, World(rank, 3)) for rank in range(3)] == [[0, 1], [2, 3], [4, 5]]
    assert shard(items, World()) == items
    with pytest.raises(ValueError, match="6 items cannot be split evenly over 4 processes"):
        shard(items, World(0, 4))


def test_helpers_are_identities_in_one_process():
    assert all_gather_objects({"a": 1}, World()) == [{"a": 1}]
    assert reduce_metrics({"x": 2.0}, World()) == {"x": 2.0}


def test_whiten_with_an_all_reduce_matches_plain_whitening_on_one_process():
    values = torch.tensor([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    plain = whiten(values, mask)
    assert torch.allclose(whiten(values, mask, all_reduce=lambda t: t), plain, atol=1e-6)
    kept = values[mask]  # by hand: (x - mean) / unbiased std
    expected = (kept - kept.mean()) / kept.std()
    assert torch.allclose(plain[mask], expected, atol=1e-6)


def test_train_refuses_a_problem_count_the_processes_cannot_share(tmp_path):
    from seele_agents.training.loop import _check_world

    config = load_config(None, ["problems_per_step=5"])
    with pytest.raises(ValueError, match=r"problems_per_step=5 cannot be split evenly over 2"):
        _check_world(config, World(0, 2))
    config = load_config(None, ["problems_per_step=4", "algo.minibatch_size=3"])
    with pytest.raises(ValueError, match=r"algo.minibatch_size=3 cannot be split evenly"):
        _check_world(config, World(0, 2))


# -- the learner: 2 ranks on halves of a batch == 1 process on all of it ------------------------


def _global_batch() -> RolloutBatch:
    """A real sampled batch (SEELE, 2 rounds x 3 samples of 4 problems) with varied rewards
    (an untrained model solves nothing, so rewards are drawn, seeded, to make advantages)."""
    model, tokenizer = build_tiny(seed=0)
    generator = TransformersGenerator(model, tokenizer, SamplingParams(max_new_tokens=8), seed=0)
    env = gym.make("seele/SEELE-v0", num_rounds=2, group_size=3, template="plain")
    batch = collect_rollouts(env, generator, num_problems=PROBLEMS)
    batch.rewards = torch.bernoulli(
        torch.full((len(batch),), 0.5), generator=torch.Generator().manual_seed(1)
    )
    return batch


def _rows_of_rank(batch: RolloutBatch, rank: int, size: int) -> RolloutBatch:
    """Rank ``rank``'s share as collect_rollouts makes it: its contiguous block of problems."""
    block = PROBLEMS // size
    keep = (batch.group_index >= rank * block) & (batch.group_index < (rank + 1) * block)
    rows = keep.nonzero().squeeze(1)
    fields = {
        name: getattr(batch, name)[rows]
        for name in ("input_ids", "attention_mask", "prompt_mask", "hint_mask", "gen_mask",
                     "rewards", "round_index", "hint_rates")
    }  # fmt: skip
    return RolloutBatch(
        **fields, group_index=batch.group_index[rows] - rank * block,
        episodes=[batch.episodes[i] for i in rows.tolist()],
    )  # fmt: skip


def _learner(overrides: list[str], world: World, *, fsdp: bool = False):
    torch.manual_seed(0)
    config = load_config(None, ["generation.max_new_tokens=8", "algo.micro_batch_size=5",
                                *overrides])  # fmt: skip
    model, _ = build_tiny(seed=0)
    ref = None
    if fsdp:  # as train.build does: the reference copy and the policy, each sharded
        ref = shard_model(copy.deepcopy(model).eval().requires_grad_(False), world)
        shard_model(model, world)
    # SGD: the update is the gradient itself (Adam's first step, g / |g|, would magnify the
    # summation-order noise of near-zero gradients into lr-sized differences).
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return make_learner(config, model, optimizer, world=world, ref_model=ref)


def _trained_state(learner) -> dict[str, torch.Tensor]:
    state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
             for k, v in learner.model.state_dict().items()}  # fmt: skip
    for key, value in learner.state_dict().get("value_head", {}).items():
        state[f"value_head.{key}"] = value.detach().clone()
    return state


def _learner_worker(rank: int, folder: str, overrides: list[str], fsdp: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD
    )
    try:
        world = World(rank, WORLD)
        batch = torch.load(f"{folder}/batch.pt", weights_only=False)
        learner = _learner(overrides, world, fsdp=fsdp)
        metrics = learner.step(_rows_of_rank(batch, rank, WORLD))
        torch.save(
            {"state": _trained_state(learner), "metrics": metrics}, f"{folder}/rank{rank}.pt"
        )
        if fsdp:
            return  # shards differ by design: there is no divergence to check
        check_in_sync(learner, world)  # identical: passes
        if rank == 1:
            with torch.no_grad():
                next(learner.model.parameters()).add_(1e-3)
        try:
            check_in_sync(learner, world)
        except RuntimeError as error:
            Path(f"{folder}/diverged{rank}.txt").write_text(str(error))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("overrides", "fsdp"),
    [
        ([], False),  # GRPO, Dr.GRPO loss (a constant normaliser), on-policy
        (["algo.loss=dapo", "algo.epochs=2"], False),  # a token mean, off-policy ratio
        (["algo.loss=grpo", "algo.advantage=grpo"], False),  # per-sequence means, std scaling
        (["algo.name=reinforcepp", "algo.beta=0.01"], False),  # returns whitened globally
        (["algo.name=ppo", "algo.epochs=2"], False),  # a value head, whitened GAE advantages
        ([], True),  # FSDP: sharded parameters, gradients reduce-scattered by FSDP itself
        (["algo.loss=dapo", "algo.epochs=2", "algo.beta=0.01"], True),  # + a sharded reference
    ],
    ids=["dr_grpo", "dapo", "grpo", "reinforcepp", "ppo", "fsdp-dr_grpo", "fsdp-dapo-kl"],
)
def test_two_gloo_ranks_take_the_step_one_process_takes(tmp_path, overrides, fsdp):
    batch = _global_batch()
    torch.save(batch, tmp_path / "batch.pt")
    single = _learner(overrides, World())
    before = _trained_state(single)
    single_metrics = single.step(batch)
    expected = _trained_state(single)
    mp.start_processes(_learner_worker, args=(str(tmp_path), overrides, fsdp), nprocs=WORLD,
                       start_method="spawn")  # fmt: skip
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    # The ranks hold bit-identical parameters ...
    assert all(torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in expected)
    # ... which are those of one process that took the whole batch (up to summation order),
    assert max(float((ranks[0]["state"][k] - expected[k]).abs().max()) for k in expected) < 1e-6
    # after a real step.
    assert max(float((expected[k] - before[k]).abs().max()) for k in expected) > 1e-4
    for key in ("loss/total", "loss/policy", "grad/norm"):
        if key in single_metrics:
            assert ranks[0]["metrics"][key] == pytest.approx(
                single_metrics[key], rel=1e-4, abs=1e-7
            )
    # The divergence check saw rank 1's perturbed weights, on both ranks.
    for rank in range(WORLD if not fsdp else 0):
        assert "parameters differ" in (tmp_path / f"diverged{rank}.txt").read_text()


# -- seele train under torchrun ----------------------------------------------------------------

# Greedy decoding one sequence at a time makes every completion a function of the prompt alone,
# so 2 processes sample exactly what 1 does and the runs can be compared step for step.
RUN = [
    "sft.steps=20", "sft.num_problems=100", f"problems_per_step={PROBLEMS}",
    "curriculum.num_rounds=2", "curriculum.group_size=4", "generation.max_new_tokens=16",
    "generation.temperature=0", "generation.batch_size=1", "eval.num_problems=6",
    "env.num_problems=40", "log.progress=false", "log.plot=false", "checkpoint_every=2",
    "keep_checkpoints=5", "optim.name=adamw", "optim.lr=1e-3",
    "optim.scheduler=constant",  # runs of 2 and 4 steps are compared: no schedule over `steps`
]  # fmt: skip


def _seele_train(folder: Path, processes: int, *extra: str, resume: bool = False) -> str:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={processes}"] if processes > 1 else [sys.executable]  # fmt: skip
    sets = [arg for kv in [*RUN, *extra] for arg in ("--set", kv)]
    sets += ["--resume", "latest"] if resume else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "-m", "seele_agents", "train", *sets, "--output-dir", str(folder)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _weights(folder: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(folder / "checkpoints" / f"step-{step:08d}" / "model" / "model.safetensors")


def _curriculum(folder: Path, step: int) -> dict:
    meta = json.loads((folder / "checkpoints" / f"step-{step:08d}" / "state.json").read_text())
    return meta["state"]["curriculum"]


def _rewards(folder: Path) -> list[tuple[int, float]]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["reward/mean"]) for r in map(json.loads, lines) if "reward/mean" in r]


def _gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"largest parameter difference: {gap:.3g}")
    return gap


@pytest.fixture(scope="module")
def one(tmp_path_factory) -> Path:
    """One process, 4 steps: what the multi-process runs must match."""
    folder = tmp_path_factory.mktemp("runs") / "one"
    _seele_train(folder, 1, "steps=4")
    return folder


@pytest.mark.slow
def test_torchrun_matches_one_process_and_resumes_at_another_world_size(tmp_path, one):
    # 2 processes, 2 steps: the same parameters, curriculum and rewards as 1 process.
    two = tmp_path / "two"
    printed = _seele_train(two, WORLD, "steps=2")
    assert printed.count("held-out accuracy before RL") == 1  # rank 0 alone prints
    assert _gap(_weights(two, 2), _weights(one, 2)) < 1e-5
    assert _curriculum(two, 2) == _curriculum(one, 2)
    assert [s for s, _ in _rewards(two)] == [1, 2]
    assert [r for _, r in _rewards(two)] == pytest.approx([r for _, r in _rewards(one)[:2]])
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-00000002"]
    # ... resumed by 1 process for steps 3-4: the 1-process run's step 4.
    printed = _seele_train(two, 1, "steps=4", resume=True)
    assert "written by 2 process(es), this run has 1" in printed
    assert _gap(_weights(two, 4), _weights(one, 4)) < 1e-5
    assert _curriculum(two, 4) == _curriculum(one, 4)
    # The other way: the 1-process run's step-2 checkpoint resumed by 2 processes.
    other = tmp_path / "other"
    shutil.copytree(one, other)
    shutil.rmtree(other / "checkpoints" / "step-00000004")
    _seele_train(other, WORLD, "steps=4", resume=True)
    assert _gap(_weights(other, 4), _weights(one, 4)) < 1e-5
    assert _curriculum(other, 4) == _curriculum(one, 4)
    assert _gap(_weights(one, 4), _weights(one, 2)) > 1e-4  # training moved the weights
    extra = torch.load(other / "checkpoints" / "step-00000004" / "extra.pt")
    assert len(extra["generator_rng_ranks"]) == WORLD


@pytest.mark.slow
def test_fsdp_under_torchrun_matches_one_process_and_resumes_unsharded(tmp_path, one):
    sharded = tmp_path / "fsdp"
    _seele_train(sharded, WORLD, "steps=2", "distributed.strategy=fsdp")
    assert _gap(_weights(sharded, 2), _weights(one, 2)) < 1e-5  # full weights, tied saved once
    assert _curriculum(sharded, 2) == _curriculum(one, 2)
    _seele_train(sharded, 1, "steps=4", "distributed.strategy=fsdp", resume=True)
    assert _gap(_weights(sharded, 4), _weights(one, 4)) < 1e-5  # its optimiser state resumed
