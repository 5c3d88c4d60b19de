"""Data-parallel training over several processes (``torchrun`` or ``accelerate launch``).

Each process (a *rank*) holds a full copy of the model, the optimiser and the curriculum. A
training step then goes:

1. every rank asks its curriculum for the step's problems; the copies are in the same state, so
   they pick the same ``P`` problems, and rank ``r`` takes the ``r``-th contiguous block of
   ``P / W`` of them (:func:`shard`): a problem's whole group, every round, stays on one rank;
2. per round, each rank samples and scores its own problems, then the outcomes of all ranks are
   gathered (:func:`all_gather_objects`) and every rank's curriculum records the outcomes of
   *all* ``P`` problems. The copies stay identical by construction and see exactly what a
   single process would: no rank owns a problem, nothing is merged after the fact;
3. the learner normalises each rank's loss by the **global** counts (sequences, generated and
   hint tokens summed over ranks, :func:`all_reduce_sum`) and sums the gradients over ranks
   (:func:`all_reduce_gradients`) before clipping, so every rank applies the gradient of the
   whole global batch and the parameters stay identical.

Step 3 is the all-reduce that ``torch.nn.parallel.DistributedDataParallel`` does, written out:
DDP averages gradients over ranks, which is only the global gradient when every rank's loss has
the same normaliser, and with token-mean losses (DAPO) or uneven response lengths it does not.
Summing gradients of globally-normalised losses is exact for every loss type.

**FSDP** (``distributed.strategy: fsdp``, :func:`shard_model`) keeps steps 1 and 2 and shards
the parameters, gradients and optimiser state of every decoder layer over the ranks with
PyTorch's ``fully_shard`` (FSDP2): a model whose Adam state does not fit one device trains on
several. FSDP reduce-scatters gradients itself, as a mean, so the learner multiplies each rank's
loss by the world size to keep the sum. Generation needs the whole model:
:class:`GatheredGenerator` gathers the full weights on every rank for each ``generate`` call
(one all-gather, then none per token: ranks generate different numbers of tokens) and frees
them after. Checkpoints hold full weights and a full optimiser state in the one-process layout,
so a run resumes with either strategy at any number of processes (:class:`FullWeights`,
:class:`FixedState`); :func:`check_in_sync` refuses to save a run whose ranks have diverged.

Without a launcher (``WORLD_SIZE`` unset or 1) every function here is a no-op on a one-rank
:class:`World`, so single-process code pays nothing.

Example:
    >>> world = World()  # a single process
    >>> shard(["a", "b", "c", "d"], world)
    ['a', 'b', 'c', 'd']
    >>> shard(["a", "b", "c", "d"], World(rank=1, size=2))
    ['c', 'd']
    >>> all_gather_objects([1, 2], world)
    [[1, 2]]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "BACKENDS",
    "STRATEGIES",
    "GatheredGenerator",
    "World",
    "all_gather_objects",
    "all_reduce_gradients",
    "all_reduce_sum",
    "barrier",
    "broadcast_module",
    "current",
    "full_optimizer_state",
    "gathered",
    "is_sharded",
    "load_optimizer_state",
    "reduce_metrics",
    "setup",
    "shard",
    "shard_model",
    "teardown",
]

T = TypeVar("T")

BACKENDS = ("auto", "gloo", "nccl")
"""``auto``: NCCL when the ranks train on CUDA devices, else gloo (CPU)."""

STRATEGIES = ("ddp", "fsdp")
"""``ddp``: every rank holds the whole model; ``fsdp``: parameters, gradients and optimiser state
sharded over the ranks (PyTorch FSDP2)."""

_BUCKET_ELEMENTS = 1 << 24  # gradients are all-reduced in flat buckets of at most this size


@dataclass(frozen=True)
class World:
    """Where this process stands among the training processes.

    Attributes:
        rank: This process's index, ``0..size-1``.
        size: How many processes train together.
        local_rank: Index on this machine (the CUDA device it uses).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, prints and writes checkpoints."""
        return self.rank == 0


def current() -> World:
    """The running process group's :class:`World`, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), _local_rank())


def setup(backend: str = "auto", device: str = "cpu") -> tuple[World, bool]:
    """Join the process group a launcher described in the environment.

    ``torchrun`` and ``accelerate launch`` both set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR`` and ``MASTER_PORT``; with ``WORLD_SIZE`` unset or 1 nothing is started.

    Args:
        backend: One of :data:`BACKENDS`.
        device: The device the model trains on (``auto`` backend: ``cuda*`` -> NCCL).

    Returns:
        ``(world, started)``: ``started`` is True when this call created the process group
        (then :func:`teardown` should end it).
    """
    if backend not in BACKENDS:
        raise ValueError(f"distributed backend={backend!r} is not one of {', '.join(BACKENDS)}.")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return current(), False
    if not dist.is_available():
        raise RuntimeError(
            f"WORLD_SIZE={size} asks for {size} processes, but this torch build has no "
            "torch.distributed; install a torch with it, or run a single process."
        )
    if backend == "auto":
        backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_local_rank())
    dist.init_process_group(backend=backend)
    return current(), True


def teardown() -> None:
    """Leave the process group (after a final barrier so no rank exits mid-collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(items: Sequence[T], world: World) -> list[T]:
    """Rank ``world.rank``'s contiguous block of ``items``; every rank gets as many.

    Raises:
        ValueError: ``len(items)`` is not a multiple of the world size.
    """
    if len(items) % world.size:
        raise ValueError(
            f"{len(items)} items cannot be split evenly over {world.size} processes; make the "
            f"count a multiple of {world.size} (e.g. problems_per_step)."
        )
    size = len(items) // world.size
    return list(items[world.rank * size : (world.rank + 1) * size])


def all_gather_objects(obj: T, world: World) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if world.size == 1:
        return [obj]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(world: World) -> None:
    """Wait until every rank gets here."""
    if world.size > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """``tensor`` summed over ranks, in place; returns it."""
    if world.size == 1:
        return tensor
    if dist.get_backend() == "nccl" and not tensor.is_cuda:  # NCCL reduces CUDA tensors only
        on_device = tensor.to(f"cuda:{torch.cuda.current_device()}")
        dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
        return tensor.copy_(on_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_gradients(parameters: Iterable[torch.nn.Parameter], world: World) -> None:
    """Sum the gradients of ``parameters`` over ranks, in flat buckets (in place).

    A parameter without a gradient on this rank contributes zeros, so the ranks' collectives
    always line up.
    """
    if world.size == 1:
        return
    params = [p for p in parameters if p.requires_grad and not _is_dtensor(p)]  # FSDP: done
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    buckets: dict[tuple[torch.device, torch.dtype], list[list[torch.Tensor]]] = {}
    filled: dict[tuple[torch.device, torch.dtype], int] = {}  # elements in each last bucket
    for p in params:
        key = (p.grad.device, p.grad.dtype)
        groups = buckets.setdefault(key, [[]])
        if filled.get(key, 0) + p.grad.numel() > _BUCKET_ELEMENTS and groups[-1]:
            groups.append([])
            filled[key] = 0
        groups[-1].append(p.grad)
        filled[key] = filled.get(key, 0) + p.grad.numel()
    for groups in buckets.values():
        for grads in groups:
            if not grads:
                continue
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()


def broadcast_module(module: torch.nn.Module, world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank (a common starting point)."""
    if world.size == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def reduce_metrics(
    metrics: dict[str, float], world: World, *, sums: Iterable[str] = ()
) -> dict[str, float]:
    """Per-rank scalar metrics combined over ranks: the mean, except the keys in ``sums``
    (summed) and ``time/*`` (the slowest rank's, which is what the step waited for).

    Every rank must pass the same keys.
    """
    if world.size == 1:
        return dict(metrics)
    keys = sorted(metrics)
    gathered = all_gather_objects([float(metrics[k]) for k in keys], world)
    if any(len(values) != len(keys) for values in gathered):
        raise RuntimeError("ranks reported different metrics; every rank must log the same keys.")
    summed = set(sums)
    out = {}
    for i, key in enumerate(keys):
        column = [values[i] for values in gathered]
        if key in summed:
            out[key] = sum(column)
        elif key.startswith("time/"):
            out[key] = max(column)
        else:
            out[key] = sum(column) / len(column)
    return out


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


# -- FSDP --------------------------------------------------------------------------------------


def shard_model(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """Shard ``model`` over the ranks with FSDP2: each decoder layer (the classes a transformers
    model lists in ``_no_split_modules``) is its own unit, the rest (embeddings, final norm,
    LM head) the root's. In place; returns the model. A single process is left unsharded.

    Raises:
        ValueError: The model names no layer classes to shard by.
    """
    if world.size == 1:
        return model
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} lists no decoder layer classes (_no_split_modules) to "
            "shard by; use distributed.strategy=ddp for it."
        )
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` was sharded by :func:`shard_model`."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule)


@contextmanager
def gathered(model: torch.nn.Module) -> Iterator[None]:
    """The full weights of a sharded ``model`` on every rank inside the ``with`` block, so its
    forward passes need no collectives (ranks may run different numbers of them). Every rank
    must enter it together. A no-op for a model that is not sharded."""
    if not is_sharded(model):
        yield
        return
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


class GatheredGenerator:
    """A generator of a sharded model: each :meth:`generate` runs inside :func:`gathered`.

    Every rank must call :meth:`generate` as often as the others (an empty request list
    still takes part). Everything else is the wrapped generator's.
    """

    def __init__(self, generator: Any, model: torch.nn.Module) -> None:
        self.generator = generator
        self.model = model

    def generate(self, requests: Sequence[Any], params: Any = None) -> list[Any]:
        """The wrapped generator's samples, with the full weights gathered meanwhile."""
        with gathered(self.model):
            return self.generator.generate(requests, params) if requests else []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser state of a sharded ``model`` gathered whole, in ``optimizer.state_dict()``'s
    layout (parameters numbered in the optimiser's order), so that a checkpoint of it resumes
    a sharded or an unsharded run alike. A collective: every rank calls it; the result is
    complete on rank 0 (others get an empty state)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    named = get_optimizer_state_dict(model, optimizer, options=options)
    index = {name: i for i, name in enumerate(_optimizer_names(model, optimizer))}
    return {
        "state": {index[name]: value for name, value in named.get("state", {}).items()},
        "param_groups": [
            {**group, "params": [index[name] for name in group["params"]]}
            for group in named.get("param_groups", [])
        ],
    }


def load_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict
) -> None:
    """Load a full optimiser state in ``optimizer.state_dict()``'s layout into the optimiser of
    a sharded ``model`` (each rank keeps its shards). Every rank calls it with the same state."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _optimizer_names(model, optimizer)
    named = {
        "state": {names[i]: value for i, value in state["state"].items()},
        "param_groups": [
            {**group, "params": [names[i] for i in group["params"]]}
            for group in state["param_groups"]
        ],
    }
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, named, options=options)


def _optimizer_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The parameter names of ``optimizer``'s parameters, in its order."""
    names = {id(p): name for name, p in model.named_parameters()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    missing = [i for i, p in enumerate(params) if id(p) not in names]
    if missing:
        raise ValueError(
            f"{len(missing)} optimiser parameter(s) are not the model's (e.g. a value head); "
            "FSDP checkpoints need every optimised parameter inside the sharded model."
        )
    return [names[id(p)] for p in params]


def _is_dtensor(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "DTensor"


class FullWeights:
    """A sharded model's full weights (gathered on creation, a collective) to save_pretrained."""

    def __init__(self, model: Any) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        self.model = model
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)
        # A tied weight (e.g. the LM head's, the embedding's) is saved once, as save_pretrained
        # does for an unsharded model.
        every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
        aliases = every - {name for name, _ in model.named_parameters()}
        self.state = {k: v for k, v in state.items() if k not in aliases}

    def save_pretrained(self, folder: Path) -> None:
        self.model.save_pretrained(folder, state_dict=self.state)


class FixedState:
    """An optimiser state already gathered, for save_checkpoint."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


def check_in_sync(learner: Any, world: World) -> None:
    """Raise if any rank's trainable parameters differ from rank 0's (they never should:
    every rank applies the same summed gradient), so a diverged run is not saved as one.
    Sharded (FSDP) parameters are different shards by design and are not compared."""
    if world.size == 1 or is_sharded(learner.model):
        return
    params = learner.trainable_parameters()
    with torch.no_grad():
        mine = torch.stack([p.detach().double().sum() for p in params]).cpu()
    every = all_gather_objects(mine, world)
    gap = max(float((other - every[0]).abs().max()) for other in every)
    if gap != 0:
        raise RuntimeError(
            f"the {world.size} processes' parameters differ (largest gap between per-tensor "
            f"sums: {gap:.3g}); something broke the gradient all-reduce. Not saving."
        )
