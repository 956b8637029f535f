"""Speed and memory of a training step: seconds, FLOPs, utilisation, peak memory.

Everything here measures in the calling process (peak memory on CPU: in a fresh one), on a
dummy batch of the experiment's kind (``Experiment.dummy_batch``) through the same training
step as the engine (``engine.forward``: autocast to bfloat16 when ``config.amp``, losses in
float32, the weighted total, backward, Adam). Used by ``benchmarks/run.py``, by Table 1's
"Training Step" and by notebook 05 (Sec. 2.4's scaling argument). Comparisons are meant to
be made between numbers measured side by side: ``time_interleaved`` alternates the variants
it compares, so that a change in the machine's load hits them alike.
"""

import dataclasses
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from seqseg_lib.config import Config
from seqseg_lib.devices import configure_device, resolve_device
from seqseg_lib.evaluation import forward, memory_format
from seqseg_lib.experiments import get_experiment
from seqseg_lib.tensors import to_device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(call: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of ``call()``, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


class TrainingStep:
    """One experiment's model, criterion, Adam and a dummy batch on ``device``; calling it runs
    one training step. The model is built after ``torch.manual_seed(config.seed)``. ``fused``
    takes Adam's fused implementation (one kernel for every parameter) instead of the engine's
    default, and ``compiled`` runs the model through ``torch.compile``: what
    ``benchmarks/optimizations.py`` weighs."""

    def __init__(
        self,
        config: Config,
        batch_size: int,
        device: str | torch.device = "cpu",
        fused: bool | None = None,
        compiled: bool = False,
    ):
        self.config, self.device = config, resolve_device(str(device))
        experiment = get_experiment(config.experiment)
        torch.manual_seed(config.seed)
        configure_device(self.device)  # as the engine trains it: TF32 and the memory layout
        layout = memory_format(experiment, self.device)
        self.model = experiment.build_model(config).to(self.device, memory_format=layout).train()
        self.criterion = experiment.build_criterion(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=fused)
        if compiled:
            self.model = torch.compile(self.model)
        images, targets = experiment.dummy_batch(config, batch_size, config.seed)
        self.images = to_device(images, self.device).contiguous(memory_format=layout)
        self.targets = to_device(targets, self.device)

    def __call__(self) -> None:
        _, _, total = forward(self.model, self.criterion, self.images, self.targets, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()

    def seconds(self) -> float:
        """Wall-clock seconds of one step."""
        return seconds_of(self, self.device)


def time_interleaved(
    steps: dict[str, Callable[[], float]], repeats: int = 5, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each of ``steps`` (callables returning their own duration), measured in
    turns: ``warmup`` rounds left out, then ``repeats`` rounds of one call each."""
    times = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            seconds = step()
            if round_ >= warmup:
                times[name].append(seconds)
    return times


def measure_step_time(
    config: Config, batch_size: int = 24, repeats: int = 5, device: str = "auto"
) -> float:
    """Median seconds of one training step (Table 1's "Training Step"), after one warm-up."""
    return measure_step_times({"step": config}, batch_size, repeats, device)["step"]


def measure_step_times(
    configs: dict[str, Config],
    batch_size: int | None = None,
    repeats: int = 5,
    device: str = "auto",
) -> dict[str, float]:
    """``{label: median seconds of one training step}`` of each config (at ``batch_size``, or
    at its own), measured in turns (``time_interleaved``: a step of each per round, after one
    warm-up round), so that a change in the machine's load falls on every config alike."""
    steps = {
        label: TrainingStep(config, batch_size or config.batch_size, device).seconds
        for label, config in configs.items()
    }
    return {
        label: statistics.median(times) for label, times in time_interleaved(steps, repeats).items()
    }


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward_flops(grad, query, key, value, *args, out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad, query, key, value)


# FlopCounterMode knows the CUDA kernels of scaled_dot_product_attention but not the CPU one,
# which it would count as 0 FLOPs: the same formulas, for the CPU kernel.
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        _cpu_attention_backward_flops
    ),
}


def training_flops(config: Config, batch_size: int, device: str = "cpu") -> int:
    """FLOPs of one training step's forward, loss and backward passes, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention;
    Adam's element-wise update is not counted), in float32."""
    step = TrainingStep(dataclasses.replace(config, amp=False), batch_size, device)
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        _, _, total = forward(step.model, step.criterion, step.images, step.targets, step.config)
        total.backward()
    return counter.get_total_flops()


def matmul_flops_per_second(
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    size: int = 2048,
    repeats: int = 5,
    budget_s: float = 10.0,
) -> float:
    """Dense ``size``-cubed matrix product throughput: the median of ``repeats`` products
    after one, or of as many as ``budget_s`` seconds allow (at least one). A CPU without
    bfloat16 instructions takes seconds per bfloat16 product, hence the budget."""
    device = resolve_device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    seconds_of(lambda: torch.mm(a, b), device)  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
        times.append(seconds_of(lambda: torch.mm(a, b), device))
    return 2 * size**3 / statistics.median(times)


@torch.no_grad()
def inference_images_per_second(
    config: Config, batch_size: int, device: str = "cpu", repeats: int = 5
) -> float:
    """Images per second of the model in eval mode, under autocast when ``config.amp``."""
    step = TrainingStep(config, batch_size, device)
    step.model.eval()
    precision = (
        torch.autocast(step.device.type, dtype=torch.bfloat16)
        if config.amp
        else torch.autocast(step.device.type, enabled=False)
    )

    def infer() -> float:
        with precision:
            return seconds_of(lambda: step.model(step.images), step.device)

    return batch_size / statistics.median(time_interleaved({"infer": infer}, repeats)["infer"])


def peak_step_memory(config: Config, batch_size: int, device: str = "cpu") -> int:
    """Bytes a first training step needs beyond the model and batch already in memory: its
    activations, gradients and Adam's state. CUDA: the allocator's peak, in this process. CPU:
    in a fresh process (an allocator that already served other steps keeps memory and hides
    growth), the peak resident set during the step, reset just before it (Linux), less the
    resident set at its start."""
    if resolve_device(device).type == "cuda":
        step = TrainingStep(config, batch_size, device)
        synchronize(step.device)
        torch.cuda.reset_peak_memory_stats(step.device)
        before = torch.cuda.memory_allocated(step.device)
        step()
        synchronize(step.device)
        return torch.cuda.max_memory_allocated(step.device) - before
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:  # a dead child raises here
        return pool.submit(_cpu_peak_in_this_process, config.to_dict(), batch_size).result()


def _cpu_peak_in_this_process(values: dict, batch_size: int) -> int:
    from seqseg_lib.experiments import config_from_dict

    torch.set_num_threads(1)  # the peak depends little on it; the probe should not compete
    step = TrainingStep(config_from_dict(values), batch_size, "cpu")
    Path("/proc/self/clear_refs").write_text("5")  # the peak resident set restarts from now
    before = _status_bytes("VmRSS")
    step()
    return _status_bytes("VmHWM") - before


def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no {field} in /proc/self/status")
