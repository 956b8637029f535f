"""Several processes, one model: torchrun's environment and what the processes share.

``torchrun --nproc_per_node=N -m seqseg_lib train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in their environment; ``init`` joins them
(NCCL between GPUs, one per local rank; gloo on CPU). Without torchrun the world has one
process and every function here is the identity, so a single-process run computes exactly what
it computed before.

What the engine keeps equal to a one-process run with the same global batch:

- each global batch of the seeded per-epoch permutation is split into N consecutive slices,
  one per process (``shard_batches``);
- DistributedDataParallel averages the N gradients, so losses are normalised by batch-wide
  counts (pixels, target masks, class weights) summed over the processes and divided by N
  (``global_count``, inside ``global_normalization()`` only: evaluation calls the same
  losses on one process's share, where no other process answers);
- metrics: each process's evaluator state, merged (``merge_states``).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

_normalizing = False


def requested() -> bool:
    """Whether torchrun (or a launcher like it) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Join the process group when ``requested()`` (once); return this process's device: the
    local rank's GPU when ``device`` is CUDA, else ``device``."""
    if not requested():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def finish() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the process that writes logs, checkpoints and reports."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_gather(value: Any) -> list[Any]:
    """Every process's ``value`` (picklable), in rank order."""
    if world_size() == 1:
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every process."""
    if world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_true(flag: torch.Tensor) -> bool:
    """Whether a boolean scalar tensor is true on every process (one reduction, then one copy to
    the host: the only synchronisation it costs)."""
    if world_size() > 1:
        flag = flag.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag)


def shard_batches(order: list[int], batch_size: int, drop_last: bool) -> list[int]:
    """This process's share of ``order`` cut into global batches of ``batch_size``: the
    ``rank``-th of N consecutive slices of every batch. A last partial batch is split as
    evenly as it goes (shares differ by at most one item; the losses' global counts keep its
    gradient exact), or dropped when ``drop_last`` or when it has fewer items than processes."""
    world, me = world_size(), rank()
    share = []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < batch_size and (drop_last or len(batch) < world):
            break
        bounds = [len(batch) * k // world for k in range(world + 1)]
        share += batch[bounds[me] : bounds[me + 1]]
    return share


@contextmanager
def global_normalization() -> Iterator[None]:
    """Within it, ``global_count`` sums over the processes: the training step's losses."""
    global _normalizing
    previous, _normalizing = _normalizing, True
    try:
        yield
    finally:
        _normalizing = previous


def global_count(count: torch.Tensor) -> torch.Tensor:
    """A loss's normaliser (a count or a sum of weights, a scalar tensor) over the global batch,
    divided by the number of processes: DistributedDataParallel's gradient average then gives
    the gradient of the global batch's loss. ``count`` itself outside ``global_normalization``
    or on one process."""
    if not _normalizing or world_size() == 1:
        return count
    total = count.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


def merge_states(states: list[Any]) -> Any:
    """One evaluator state from several processes' (``state_dict`` values): numbers and tensors
    summed, lists concatenated in rank order, dicts merged key by key."""
    first = states[0]
    if isinstance(first, dict):
        return {key: merge_states([state[key] for state in states]) for key in first}
    if isinstance(first, list):
        return [item for state in states for item in state]
    if isinstance(first, torch.Tensor):
        return torch.stack([state.cpu() for state in states]).sum(0)
    return sum(states[1:], first)


def merged(state: Any) -> Any:
    """``merge_states`` of every process's ``state``, on every process."""
    return merge_states(all_gather(state)) if world_size() > 1 else state
