"""Run configurations: one frozen dataclass, fully resolved, saved with every run.

``Config`` holds everything a training run depends on; its ``model`` and ``loss`` are the
frozen settings dataclasses of the model and criterion it builds (``Seq2SegConfig``,
``SetLossConfig``, ...: each lives beside the class it configures, with the report's values
as defaults). A configuration is saved as ``config.json`` beside the run's logs and inside
every checkpoint, as plain JSON.

This module holds data only. The named presets (``paper``, ``cpu``, ``smoke``) live with
their experiment in ``seqseg_lib.experiments``, whose ``build_config`` makes a ``Config``:

- ``paper``: the report's exact hyperparameters (Sec. 2.2, 3.3, 4), for a GPU.
- ``cpu``: meaningful results on 2 CPU cores in minutes per model (smaller images and
  models, documented beside each preset).
- ``smoke``: seconds; exercises every code path in the tests.
"""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

PROFILES = ("smoke", "cpu", "paper")
# The names of ``experiments.EXPERIMENTS`` (a test keeps them equal), here so that the command
# line can list them without importing torch.
EXPERIMENT_NAMES = (
    "seq2seg",
    "seq2seg-noskip",
    "unet",
    "mnist-easy",
    "mnist-hard",
    "hungarian-unet",
    "seq2seg-panoptic",
    "eomt",
)
# The names of ``data.DATASETS`` (a test keeps them equal), for the command line likewise.
DATASET_NAMES = ("synthetic", "cityscapes", "camvid", "mnist")
# Fields that steer a run without changing what it computes: a run directory may be resumed
# with different values for these.
RUN_CONTROL_FIELDS = (
    "max_steps",
    "checkpoint_every",
    "checkpoint_epochs",
    "validate_every",
    "device",
    "deterministic",
    "fused_adam",
    "compile",
    "graphs",
    "check_every",
    "num_workers",
    "progress",
)


@dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Epoch-based schedules, Adam (Sec. 2.2)."""

    experiment: str
    profile: str
    dataset: str
    data_root: str | None = None
    seed: int = 0
    # the model's settings: a frozen dataclass (e.g. ``Seq2SegConfig``), ``num_classes`` included
    model: Any = None
    # optimisation
    epochs: int = 30
    batch_size: int = 24  # Sec. 2.2
    lr: float = 1e-3
    lr_milestones: tuple[tuple[int, float], ...] = ()  # (epoch, learning rate from then on)
    warmup_steps: int = 0  # linear warm-up, 0 in every ``paper`` profile
    drop_last: bool = True  # 2975 // 24 = 123 minibatches per epoch (Sec. 2.2)
    # data: resize then crop (Sec. 2.2), sizes as (H, W); None keeps the files' size
    resize: tuple[int, int] | None = (140, 280)
    crop: tuple[int, int] | None = (128, 256)
    hflip: bool = False  # random horizontal flips of training crops (ours; Sec. 2.2: crops only)
    num_train: int | None = None  # None: the whole split
    num_val: int | None = None
    # the criterion's settings: a frozen dataclass (e.g. ``SetLossConfig``)
    loss: Any = None
    # run control (may change between a run and its resumption)
    max_steps: int | None = None
    checkpoint_every: int = 0  # steps; 0 = at the end of epochs only (``checkpoint_epochs``)
    checkpoint_epochs: int = 1  # a checkpoint every this many epochs, and after the last
    validate_every: int = 1  # epochs between validations; the last epoch is always validated
    device: str = "auto"
    # bit-identical kernels on CUDA; None: yes except under ``paper`` (``engine.deterministic``)
    deterministic: bool | None = None
    amp: bool = False  # autocast to bfloat16 (``paper``: where the device has it in hardware)
    # Adam's fused kernels; None: on CUDA, off on CPU, where the engine's step is measured
    # faster without them (``benchmarks/optimizations.py``)
    fused_adam: bool | None = None
    # the model through ``torch.compile``: True (its default mode) or a mode's name
    # ("reduce-overhead", "max-autotune"); False: eager (same measurement)
    compile: bool | str = False
    # the whole training step (forward, loss, backward, Adam) replayed as one CUDA graph
    # (``seqseg_lib.graphs``); None: where ``reports/benchmarks.csv`` measured it faster
    # (``paper`` on CUDA), never on CPU, where the same static step runs uncaptured
    graphs: bool | None = None
    # steps between the host's reads of the device-side non-finite-loss flag (each read is a
    # synchronisation); also read at every epoch's end and before every checkpoint.
    # None: every step on CPU (free there), every 50 on CUDA
    check_every: int | None = None
    num_workers: int = 0
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists), ``model`` and ``loss`` as dicts."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any], model_type: type, loss_type: type) -> "Config":
        """The inverse of ``to_dict``, given the settings classes of the run's experiment.

        ``model`` and ``loss`` may name only some of their fields (the others take their
        defaults), as the ``config.json`` of runs saved with untyped settings do.
        """
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        values = dict(values)
        for key in ("resize", "crop"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        values["lr_milestones"] = tuple(tuple(m) for m in values.get("lr_milestones", ()))
        values["model"] = settings_from_dict(model_type, values.get("model") or {}, "model")
        values["loss"] = settings_from_dict(loss_type, values.get("loss") or {}, "loss")
        return cls(**values)

    def differences(self, other: "Config") -> list[str]:
        """Fields (other than run control) whose values differ, as 'name: a != b'."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{key}: {mine[key]!r} != {theirs[key]!r}"
            for key in mine
            if key not in RUN_CONTROL_FIELDS and mine[key] != theirs[key]
        ]


def settings_from_dict(settings_type: type, values: dict[str, Any], what: str) -> Any:
    """``settings_type(**values)`` with JSON lists turned back into tuples; an unknown key is a
    ``ValueError`` listing the valid ones."""
    return replace_settings(settings_type(), values, what)


def replace_settings(settings: Any, overrides: dict[str, Any], what: str) -> Any:
    """``dataclasses.replace(settings, **overrides)``; an unknown key is a ``ValueError``
    naming the settings class and listing its fields."""
    valid = [f.name for f in dataclasses.fields(settings)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown {what} setting(s) {unknown} for {type(settings).__name__}; "
            f"valid: {', '.join(valid) or '(none)'}"
        )
    overrides = {key: _tuples(value) for key, value in overrides.items()}
    return dataclasses.replace(settings, **overrides)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def check_choice(name: str, value: str, valid: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if valid, else raise ``ValueError`` listing the valid choices."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
