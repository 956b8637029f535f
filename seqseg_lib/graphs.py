"""The training step replayed from CUDA graphs: the host launches one graph, not ~500 kernels.

At the report's sizes a Seq2Seg step on one H200 keeps the GPU busy for a fraction of its
25.9 ms: the host, launching each of its kernels, sets the pace (``reports/benchmarks.md``). A
CUDA graph records the kernels of a step once and replays them with one launch. Two ways,
chosen by the engine (``Trainer``, ``Config.graphs``):

- ``WholeStep``: forward, loss, backward and Adam in one graph, for steps whose every shape is
  fixed and which never wait for the host (the semantic experiments: no host synchronisation
  in their steps, tested by ``tests/test_gpu_path.py``). Inputs are copied into static
  buffers; outputs, losses and gradients are static tensors, overwritten by the next replay
  (the engine reads them before it). Adam is ``capturable``, its learning rate a device tensor
  that the schedules fill in place (``tensor_learning_rates``), so the schedule stays exact.
- ``graph_model``: the model's forward and backward as two graphs
  (``torch.cuda.make_graphed_callables``), for set prediction: its Hungarian matching runs on
  the host between them (``scipy``), on the costs the forward graph computed; the loss is
  computed eagerly and Adam is the fused one.

Both capture after ``WARMUP_STEPS`` eager steps, which are the run's first real steps (cuDNN's
autotuner and the allocator settle in them), and fall back to the eager step for a batch of
another shape (a last partial batch, ``drop_last=False``), or in evaluation mode. On a CPU
there is nothing to capture: ``WholeStep`` runs the same static step uncaptured, which the
tests hold to the eager step's losses and weights. Capture needs one process (not under
torchrun: DistributedDataParallel's all-reduce is not captured here).
"""

import time
from collections.abc import Callable
from typing import Any

import torch

WARMUP_STEPS = 3  # eager steps on a side stream before capture (PyTorch's example: 3)


def tensor_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Each parameter group's learning rate as a 0-dim tensor on its parameters' device (in
    place if it already is one): a captured Adam reads it there at every replay, and the
    schedules (``torch.optim.lr_scheduler``) ``fill_`` it. Also after ``load_state_dict``,
    which may bring plain floats back."""
    for group in optimizer.param_groups:
        device = group["params"][0].device
        lr = group["lr"]
        if isinstance(lr, torch.Tensor) and lr.device == device:
            continue
        group["lr"] = torch.tensor(float(lr), dtype=torch.float32, device=device)


def float_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Each parameter group's learning rate as a Python float: an eager run resumed from a
    captured one's checkpoint (foreach Adam takes no tensor learning rate)."""
    for group in optimizer.param_groups:
        group["lr"] = float(group["lr"])


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The first group's learning rate as a Python float (a tensor's costs a synchronisation)."""
    lr = optimizer.param_groups[0]["lr"]
    return float(lr)


def _copy_into(static: Any, value: Any) -> None:
    """Copy ``value``'s tensors into ``static``'s, which have the same structure and shapes."""
    if isinstance(static, torch.Tensor):
        static.copy_(value, non_blocking=True)
    elif isinstance(static, dict):
        for key in static:
            _copy_into(static[key], value[key])
    elif isinstance(static, list | tuple):
        for s, v in zip(static, value, strict=True):
            _copy_into(s, v)


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clone(v) for v in value)
    return value


def shapes(value: Any) -> Any:
    """The shapes (and dtypes) of ``value``'s tensors, in its structure: two batches with equal
    ``shapes`` fit the same static buffers."""
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.dtype)
    if isinstance(value, dict):
        return tuple((k, shapes(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(shapes(v) for v in value)
    return value


class WholeStep:
    """``step(images, targets) -> (outputs, losses, total)``: ``eager_step`` (forward, loss,
    backward and optimizer step of one batch on the device) from static input buffers, captured
    as one CUDA graph after ``WARMUP_STEPS`` calls on CUDA, uncaptured elsewhere.

    ``eager_step`` must zero the gradients with ``set_to_none=True`` and call
    ``optimizer.step()``; its optimizer must be capturable on CUDA. ``capture_seconds``: how
    long the capture took (None before it)."""

    def __init__(self, eager_step: Callable[[Any, Any], tuple], device: torch.device) -> None:
        self.eager_step, self.device = eager_step, device
        self.calls = 0
        self.static_inputs: tuple[Any, Any] | None = None
        self.static_outputs: tuple | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.capture_seconds: float | None = None

    @property
    def captures(self) -> bool:
        return self.device.type == "cuda"

    def __call__(self, images: Any, targets: Any) -> tuple:
        self.calls += 1
        if self.static_inputs is None:
            self.static_inputs = _clone((images, targets))
        elif shapes((images, targets)) != shapes(self.static_inputs):
            return self.eager_step(images, targets)  # another shape: not the graph's
        static_images, static_targets = self.static_inputs
        _copy_into(self.static_inputs, (images, targets))
        if not self.captures:
            return self.eager_step(static_images, static_targets)
        if self.graph is None and self.calls <= WARMUP_STEPS:
            return self._on_side_stream(static_images, static_targets)
        if self.graph is None:
            self._capture(static_images, static_targets)
        self.graph.replay()
        return self.static_outputs

    def _on_side_stream(self, images: Any, targets: Any) -> tuple:
        """An eager step on a side stream, as warm-up before capture must run (PyTorch's
        CUDA graph notes), ordered after and before the current stream's work."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            result = self.eager_step(images, targets)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        return result

    def _capture(self, images: Any, targets: Any) -> None:
        """Record one step of the static inputs; its outputs become the static outputs. The
        capture runs no kernel: the replay that follows trains this batch."""
        torch.cuda.synchronize(self.device)
        start = time.monotonic()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_outputs = self.eager_step(images, targets)
        torch.cuda.synchronize(self.device)
        self.capture_seconds = time.monotonic() - start


def graph_model(model: torch.nn.Module, sample_images: torch.Tensor) -> float:
    """Replace ``model``'s training-mode forward (and its backward) by CUDA graphs captured on
    ``sample_images`` (``torch.cuda.make_graphed_callables``); an input of another shape runs
    the eager forward. The capture's warm-up passes leave the model as they found it (buffers
    such as BatchNorm's running statistics, and the GPU's random state, are restored), and
    touch no gradient. Returns the seconds the capture took."""
    device = sample_images.device
    buffers = [buffer.clone() for buffer in model.buffers()]
    rng = torch.cuda.get_rng_state(device)
    eager_forward = model.forward
    torch.cuda.synchronize(device)
    start = time.monotonic()
    torch.cuda.make_graphed_callables(
        model, (sample_images.detach().clone(),), num_warmup_iters=WARMUP_STEPS
    )
    torch.cuda.synchronize(device)
    seconds = time.monotonic() - start
    graphed_forward = model.forward
    shape = tuple(sample_images.shape)

    def forward(images: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if tuple(images.shape) != shape or args or kwargs:
            return eager_forward(images, *args, **kwargs)
        return graphed_forward(images)

    model.forward = forward
    with torch.no_grad():
        for buffer, saved in zip(model.buffers(), buffers, strict=True):
            buffer.copy_(saved)
    torch.cuda.set_rng_state(rng, device)
    return seconds
