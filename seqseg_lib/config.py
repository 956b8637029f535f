"""Run configurations: one frozen dataclass, report values as the ``paper`` profile.

A configuration is fully resolved (no ``None`` meaning "use the default somewhere else")
and is saved as ``config.json`` beside the run's logs and inside every checkpoint. Profiles:

- ``paper``: the report's exact hyperparameters (Sec. 2.2, 3.3, 4), for a GPU.
- ``cpu``: meaningful results on 2 CPU cores in minutes per model (smaller images and
  models, documented per experiment below).
- ``smoke``: seconds; exercises every code path in the tests.

Variants (a learning rate, a loss) come from ``dataclasses.replace`` or ``overrides``.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("smoke", "cpu", "paper")
SEMANTIC_EXPERIMENTS = ("seq2seg", "seq2seg-noskip", "unet")
DATASETS = {
    "seq2seg": ("synthetic", "cityscapes", "camvid"),
    "seq2seg-noskip": ("synthetic", "cityscapes", "camvid"),
    "unet": ("synthetic", "cityscapes", "camvid"),
}
# Fields that steer a run without changing what it computes: a run directory may be resumed
# with different values for these.
RUN_CONTROL_FIELDS = ("max_steps", "checkpoint_every", "device", "num_workers", "progress")


@dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Epoch-based schedules, Adam (Sec. 2.2)."""

    experiment: str
    profile: str
    dataset: str
    data_root: str | None = None
    seed: int = 0
    # model: keyword arguments of the model class, ``num_classes`` included
    model: dict[str, Any] = field(default_factory=dict)
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
    num_train: int | None = None  # None: the whole split
    num_val: int | None = None
    # loss: keyword arguments of the criterion
    loss: dict[str, Any] = field(default_factory=dict)
    # run control (may change between a run and its resumption)
    max_steps: int | None = None
    checkpoint_every: int = 0  # steps; 0 = at the end of each epoch only
    device: str = "auto"
    amp: bool = False  # autocast to bfloat16 (CPU) / float16 (CUDA)
    num_workers: int = 0
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        values = dict(values)
        for key in ("resize", "crop"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        values["lr_milestones"] = tuple(tuple(m) for m in values.get("lr_milestones", ()))
        return cls(**values)

    def differences(self, other: "Config") -> list[str]:
        """Fields (other than run control) whose values differ, as 'name: a != b'."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{key}: {mine[key]!r} != {theirs[key]!r}"
            for key in mine
            if key not in RUN_CONTROL_FIELDS and mine[key] != theirs[key]
        ]


def check_choice(name: str, value: str, valid: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if valid, else raise ``ValueError`` listing the valid choices."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def build_config(
    experiment: str,
    profile: str = "cpu",
    dataset: str | None = None,
    **overrides: Any,
) -> Config:
    """The named preset for ``experiment`` on ``dataset`` under ``profile``, then overrides.

    ``dataset`` None takes the experiment's embedded default. Names are checked and a
    ``ValueError`` lists the valid ones.
    """
    import seqseg_lib.experiments  # noqa: F401  (registers every experiment's presets)

    check_choice("experiment", experiment, list(DATASETS))
    check_choice("profile", profile, PROFILES)
    dataset = dataset or DATASETS[experiment][0]
    check_choice(f"dataset for {experiment}", dataset, DATASETS[experiment])
    values = dict(PRESETS[experiment](profile, dataset))
    model = {**values.pop("model", {}), **overrides.pop("model", {})}
    loss = {**values.pop("loss", {}), **overrides.pop("loss", {})}
    if overrides.get("max_steps") is not None:
        check_positive_int("max_steps", overrides["max_steps"])
    try:
        return Config(experiment, profile, dataset, model=model, loss=loss, **(values | overrides))
    except TypeError as error:
        valid = ", ".join(f.name for f in dataclasses.fields(Config))
        raise ValueError(f"{error}; valid config fields: {valid}") from None


def register(experiment: str, datasets: tuple[str, ...]):
    """Decorator adding a preset function ``(profile, dataset) -> dict`` for an experiment."""

    def wrap(preset):
        DATASETS[experiment] = datasets
        PRESETS[experiment] = preset
        return preset

    return wrap


PRESETS: dict[str, Any] = {}

# Image geometry per dataset and profile: (resize, crop) as (H, W). Cityscapes: Sec. 2.2.
# CamVid frames are 360x480: the same height, the width keeping their 3:4 aspect (a multiple
# of 16). ``cpu`` halves both sides.
_GEOMETRY = {
    ("paper", "cityscapes"): ((140, 280), (128, 256)),
    ("paper", "synthetic"): ((140, 280), (128, 256)),
    ("paper", "camvid"): ((140, 187), (128, 176)),
    ("cpu", "cityscapes"): ((70, 140), (64, 128)),
    ("cpu", "synthetic"): ((70, 140), (64, 128)),
    ("cpu", "camvid"): ((70, 93), (64, 80)),
    ("smoke", "cityscapes"): ((36, 72), (32, 64)),
    ("smoke", "synthetic"): ((36, 72), (32, 64)),
    ("smoke", "camvid"): ((36, 48), (32, 48)),
}
_NUM_CLASSES = {"cityscapes": 34, "synthetic": 34, "camvid": 11}

# Report schedules, Sec. 2.2: (epochs, initial lr, milestones).
_PAPER_SCHEDULES = {
    "unet": (30, 1e-3, ((10, 5e-4), (20, 1e-4))),
    "seq2seg": (45, 1e-4, ((15, 5e-5), (30, 1e-5))),
    "seq2seg-noskip": (45, 5e-5, ((15, 1e-5), (30, 5e-6))),
}


def _semantic_preset(experiment: str):
    def preset(profile: str, dataset: str) -> dict[str, Any]:
        resize, crop = _GEOMETRY[profile, dataset]
        model = {"num_classes": _NUM_CLASSES[dataset]}
        if experiment != "unet":
            model["skip"] = experiment == "seq2seg"
        epochs, lr, milestones = _PAPER_SCHEDULES[experiment]
        values = {"resize": resize, "crop": crop, "epochs": epochs, "lr": lr}
        values["lr_milestones"] = milestones
        if profile == "cpu":
            values |= _cpu_semantic(experiment, epochs, lr, milestones)
            model.update(values.pop("model"))
        elif profile == "smoke":
            values.update(epochs=2, batch_size=4, num_train=8, num_val=4, lr_milestones=((1, lr),))
            values["lr"] = lr if experiment != "unet" else 1e-2
            model.update(
                {"base_width": 4}
                if experiment == "unet"
                else {"patch_size": 8, "hidden_dim": 32, "num_layers": 2, "num_heads": 2}
                | {"ffn_dim": 64}
            )
        return values | {"model": model}

    return preset


def _cpu_semantic(experiment, epochs, lr, milestones) -> dict[str, Any]:
    """The ``cpu`` profile: half-resolution crops, a smaller Seq2Seg, the report's schedules
    shortened to a third.

    - Crops of 64x128 from a 70x140 resize (Cityscapes geometry; CamVid keeps its aspect),
      600 training and 150 validation images of the synthetic set, batch 16.
    - U-Net is the report's model (7.8M parameters).
    - Seq2Seg keeps the report's sequence of 128 tokens (8x16 patches of 8x8 pixels on a
      64x128 crop) with a 4-layer, 256-wide encoder (4 heads, FFN 1024). Being 12 times
      smaller than the report's, it trains at 5 times the report's learning rates, keeping
      their ratios: with skip 5e-4 -> 2.5e-4 -> 5e-5, without 2.5e-4 -> 5e-5 -> 2.5e-5 (at the
      report's 1e-4, 330 steps left it at 48% validation accuracy on CamVid, still falling
      slowly, against U-Net's 79%).
    - Epochs and milestones are a third of the report's: U-Net 10 (3, 7), Seq2Seg 15 (5, 10).
    """
    scale = 1 / 3
    if experiment == "unet":
        model, lr_scale = {"base_width": 32}, 1.0
    else:
        model = {"patch_size": 8, "hidden_dim": 256, "num_layers": 4, "num_heads": 4}
        model["ffn_dim"] = 1024
        lr_scale = 5.0
    return {
        "epochs": round(epochs * scale),
        "lr": lr * lr_scale,
        "lr_milestones": tuple((max(1, round(e * scale)), v * lr_scale) for e, v in milestones),
        "batch_size": 16,
        "num_train": 600,
        "num_val": 150,
        "model": model,
    }


for _name in SEMANTIC_EXPERIMENTS:
    PRESETS[_name] = _semantic_preset(_name)
