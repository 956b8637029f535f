"""Counting host synchronisations: the operations that make the CPU wait for a GPU.

On CUDA, the host queues kernels and runs ahead of the device until it needs a value: a
scalar (``.item()``, ``int(t)``, ``if t:``), an output whose size depends on the data
(``nonzero``, ``unique``, ``masked_select``, indexing with a boolean mask), or a copy to host
memory (``.cpu()``, ``.tolist()``). Each such operation drains the queue and
leaves the GPU idle while Python catches up. ``HostSyncCounter`` counts them on any device,
CPU included, so that a training step's budget of synchronisations is testable without a GPU:

    with HostSyncCounter() as syncs:
        trainer.train_step(images, targets)
    assert syncs.total <= 2, syncs.counts

It counts at two levels: ATen operators (``TorchDispatchMode``: scalars, data-dependent
shapes, boolean indexing) and ``Tensor`` methods that leave the device (``TorchFunctionMode``:
``cpu``, ``tolist``, which on a CPU tensor dispatch nothing). A copy to the host
that the caller asked to be non-blocking (``.to("cpu", non_blocking=True)`` into pinned
memory) is not a synchronisation and is not counted.

The other way too: a tensor made from host data on a device (``torch.tensor(x, device=d)``,
``torch.as_tensor``) is a copy from pageable memory, which CUDA makes the host wait for
behind every kernel queued before it; it is counted whatever ``d`` is, a CPU included, so that
such code is found without a GPU (``torch.full`` fills on the device and is not counted). So
is ``.to(device)`` of a host tensor that is not pinned or not non-blocking, onto another
device.
"""

from collections import Counter
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
# ATen operators whose result the host must wait for.
_SYNCING_OPERATORS = {
    _aten._local_scalar_dense.default: "item",  # .item(), int(t), float(t), bool(t)
    _aten.nonzero.default: "nonzero",
    _aten.nonzero_static.default: None,  # the static-size variant does not synchronise
    _aten.masked_select.default: "masked_select",
    _aten._unique2.default: "unique",
    _aten.unique_dim.default: "unique",
    _aten.unique_consecutive.default: "unique",
    _aten.repeat_interleave.Tensor: "repeat_interleave",
}
_INDEXING = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default}
# ``Tensor`` methods that copy to host memory (``numpy`` is not one: it refuses a CUDA tensor,
# so the copy it reads was counted where it was made).
_LEAVING_METHODS = {"cpu", "tolist"}
# Factories that copy host data (Python numbers, lists, arrays) into a new tensor.
_FROM_HOST = {torch.tensor, torch.as_tensor, torch.asarray}


class _DispatchCounter(TorchDispatchMode):
    def __init__(self, counts: Counter, host: set[int]) -> None:
        super().__init__()
        self.counts, self.host = counts, host

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = _SYNCING_OPERATORS.get(func)
        if name == "item" and args[0].data_ptr() in self.host:
            pass  # a scalar that lives in host memory on every device
        elif name:
            self.counts[name] += 1
        elif func in _INDEXING and _has_boolean_index(args):
            self.counts["boolean indexing"] += 1
        return func(*args, **(kwargs or {}))


class _FunctionCounter(TorchFunctionMode):
    def __init__(self, counts: Counter) -> None:
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _LEAVING_METHODS and args and isinstance(args[0], torch.Tensor):
            self.counts[f".{name}()"] += 1
        elif func in _FROM_HOST and kwargs.get("device") is not None:
            if not (args and isinstance(args[0], torch.Tensor)):
                self.counts["host data to device"] += 1
        elif name in ("to", "cuda") and args and _copies_to_device(name, args, kwargs):
            self.counts["host-to-device copy"] += 1
        return func(*args, **kwargs)


def _copies_to_device(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``tensor.to(...)`` / ``tensor.cuda(...)`` copies a host tensor to another device
    in a way the host waits for: from pageable memory, or without ``non_blocking``."""
    tensor = args[0]
    if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
        return False
    target = kwargs.get("device", "cuda" if name == "cuda" else None)
    for arg in args[1:]:
        if isinstance(arg, str | torch.device | int):
            target = f"cuda:{arg}" if isinstance(arg, int) else arg
    if target is None or torch.device(target).type == "cpu":
        return False
    non_blocking = kwargs.get("non_blocking", False)
    return not (non_blocking and tensor.is_pinned())


def _has_boolean_index(args: tuple[Any, ...]) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(
        isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in indices or ()
    )


def host_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The tensors of ``optimizer``'s state that stay in host memory when it trains on a GPU:
    Adam's step counters, unless the optimizer is ``fused`` or ``capturable`` (then they live
    on the device and are never read by the host)."""
    on_device = any(g.get("fused") or g.get("capturable") for g in optimizer.param_groups)
    if on_device:
        return []
    return [state["step"] for state in optimizer.state.values() if "step" in state]


class HostSyncCounter:
    """Counts, while active, the operations that synchronise the host with a CUDA device
    (``counts``: per kind; ``total``). Reading the scalars of ``host`` (tensors that live in
    host memory on every device, e.g. ``host_tensors(optimizer)``) is free and not counted.
    Nested use is not supported."""

    def __init__(self, host: list[torch.Tensor] = ()) -> None:
        self.counts: Counter = Counter()
        pointers = {tensor.data_ptr() for tensor in host}
        self._modes = (_FunctionCounter(self.counts), _DispatchCounter(self.counts, pointers))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __enter__(self) -> "HostSyncCounter":
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
