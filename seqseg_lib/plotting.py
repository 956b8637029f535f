"""Figures and tables for the notebooks: written into ``reports/`` with their provenance."""

import datetime
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, hsv_to_rgb
from matplotlib.patches import Patch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from seqseg_lib.data.labels import IGNORE_INDEX, LabelSpace
from seqseg_lib.devices import describe_device
from seqseg_lib.queries import QueryPrediction, predict_queries

REPOSITORY = Path(__file__).resolve().parents[1]


def reports_location(reports_dir: str | Path, profile: str) -> Path:
    """Where a notebook writes its tables and figures: ``reports_dir``, except that ``smoke``
    output never lands in the repository's ``reports/`` (which holds ``cpu`` and ``paper``
    results only): it goes to ``scratch/reports-smoke/`` beside it, which git ignores."""
    reports_dir = Path(reports_dir).resolve()
    if profile == "smoke" and reports_dir == REPOSITORY / "reports":
        return REPOSITORY / "scratch" / "reports-smoke"
    return reports_dir


# The datasets with a default that ships with the code (data/__init__.py): no root, no files.
EMBEDDED = ("synthetic", "mnist")
# What ``provenance`` records beside the profile, dataset, devices, seed and date; tables
# written before it did lack them.
RECORDED = ("code", "torch", "data")


def provenance(
    profile: str,
    dataset: str,
    device: str,
    seed: int | str,
    runs: Iterable[str | Path] = (),
    data_root: str | Path | None = None,
) -> dict[str, str]:
    """Where numbers come from, stated beside every table and figure: the profile, dataset and
    seed (of several runs' seeds: ``"0, 1, 2"``); the device (model, threads) and precision the
    ``runs`` were trained with, as their last ``metrics.jsonl`` record states (run by run where
    they differ); the device of this process, which evaluates; the code's commit
    (``+modified`` when the working tree differs from it), the torch version, and the data
    (a real dataset's fingerprint: ``data_fingerprint`` of the runs' ``data_root``, and of
    ``data_root``, the notebook's, before any run is known; a dataset without a root is the
    default that ships with the code, or one whose environment variable names its folder)."""
    meta = {"profile": profile, "dataset": dataset}
    runs = [Path(run) for run in runs]
    trained = {run.name: _trained_with(run) for run in runs}
    if trained:
        kinds = sorted(set(trained.values()))
        meta["trained on"] = (
            kinds[0]
            if len(kinds) == 1
            else "; ".join(f"{name}: {where}" for name, where in trained.items())
        )
    meta["evaluated on" if trained else "device"] = describe_device(device)
    given = ({_data_root(run) for run in runs} | {data_root}) - {None}
    roots = sorted({Path(root).resolve() for root in given})
    unnamed = (
        f"embedded {dataset}" if dataset in EMBEDDED else f"{dataset}, root from the environment"
    )
    meta |= {
        "code": code_version(),
        "torch": torch.__version__,
        "data": ", ".join(data_fingerprint(root) for root in roots) or unnamed,
    }
    return meta | {"seed": str(seed), "date": datetime.date.today().isoformat()}


def code_version() -> str:
    """The repository's commit, with ``+modified`` when tracked files outside ``reports/``
    differ from it. A copy without git history (a GPU machine's or a cluster's copy of a clean
    checkout) names its commit in ``SEQSEG_COMMIT``; else ``unknown``."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        # what the notebooks write (reports/) is no change of the code
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!reports")
        return commit + ("+modified" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        copied_from = os.environ.get("SEQSEG_COMMIT")
        return f"{copied_from} (a copy without git)" if copied_from else "unknown"


def data_fingerprint(root: str | Path) -> str:
    """``"<folder name>: N files, <hash>"``: the number of files under ``root`` and the first
    10 hex digits of the SHA-1 of their relative paths and sizes (not their contents: cheap,
    and it changes when a file is added, removed, renamed or rewritten to another size)."""
    root = Path(root)
    files = sorted(path for path in root.rglob("*") if path.is_file())
    listing = "\n".join(f"{path.relative_to(root)}:{path.stat().st_size}" for path in files)
    digest = hashlib.sha1(listing.encode()).hexdigest()[:10]
    return f"{root.name}: {len(files)} files, {digest}"


def _data_root(run_dir: Path) -> str | None:
    config = run_dir / "config.json"
    return json.loads(config.read_text()).get("data_root") if config.exists() else None


def _trained_with(run_dir: Path) -> str:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines() if run_dir.is_dir() else []
    environment = json.loads(lines[-1]).get("environment") if lines else None
    if environment is None:
        return "not recorded (runs older than the record of their environment)"
    processes = environment.get("processes", 1)
    device = environment["device"].replace(", 1 threads)", ", 1 thread)")  # older records
    where = device + (f" x {processes} processes" if processes > 1 else "")
    return f"{where}, {environment['precision']}"


def save_table(table: pd.DataFrame, name: str, reports_dir: str | Path, meta: dict) -> Path:
    """Write ``tables/{name}.csv`` and ``tables/{name}.md`` (with the provenance above it)."""
    folder = Path(reports_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / f"{name}.csv")
    header = ", ".join(f"{k}: {v}" for k, v in meta.items())
    (folder / f"{name}.md").write_text(f"{header}\n\n{to_markdown(table)}\n")
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return _relative(folder / f"{name}.md")


def to_markdown(table: pd.DataFrame) -> str:
    """A table in Markdown, empty cells as '–'."""
    return table.astype(object).where(table.notna(), None).to_markdown(missingval="–")


def save_figure(figure: plt.Figure, name: str, reports_dir: str | Path, meta: dict) -> Path:
    """Write ``figures/{name}.png`` with the provenance in a small grey line above it (the
    legend, if any, is below), and in the PNG's metadata."""
    folder = Path(reports_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    line = ", ".join(f"{k}: {v}" for k, v in meta.items())
    figure.text(0.01, 1.0, line, fontsize=7, color="0.4", va="bottom", transform=figure.transFigure)
    path = folder / f"{name}.png"
    dpi = 110
    for _ in range(4):  # e.g. 100 smooth masks: 256 colours, then fewer pixels, until it fits
        figure.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Description": line})
        if path.stat().st_size <= MAX_FIGURE_BYTES:
            break
        with Image.open(path) as image:
            info = image.info
            quantized = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        quantized.save(path, optimize=True, pnginfo=_png_text(info))
        if path.stat().st_size <= MAX_FIGURE_BYTES:
            break
        dpi = int(dpi * 0.85)
    return _relative(path)


def _relative(path: Path) -> Path:
    """``path`` from the working directory: what a notebook shows names no folder of the
    machine that ran it."""
    return Path(os.path.relpath(path))


MAX_FIGURE_BYTES = 1_000_000


def _png_text(info: dict) -> PngInfo:
    text = PngInfo()
    for key in ("Description", "Software"):
        if key in info:
            text.add_text(key, str(info[key]))
    return text


def colorize(eval_ids: torch.Tensor | np.ndarray, label_space: LabelSpace) -> np.ndarray:
    """Evaluation ids [H, W] -> RGB uint8 [H, W, 3] in the dataset's palette, void black."""
    ids = np.asarray(eval_ids)
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: label_space.num_eval_classes] = np.array(label_space.palette, dtype=np.uint8)
    palette[IGNORE_INDEX] = 0
    return palette[np.clip(ids, 0, 255)]


def show_image(axis: plt.Axes, image: torch.Tensor, title: str = "") -> None:
    """Draw an image tensor [C, H, W] (C = 1 or 3, values in [0, 1]) without ticks."""
    array = image.detach().cpu().permute(1, 2, 0).numpy().clip(0, 1)
    axis.imshow(array[..., 0] if array.shape[-1] == 1 else array, cmap="gray")
    axis.set_title(title, fontsize=8)
    axis.set_axis_off()


def plot_segmentations(
    images: torch.Tensor,
    columns: dict[str, torch.Tensor],
    label_space: LabelSpace,
    title: str = "",
) -> plt.Figure:
    """Figure 1: one row per image; the image, then each named map of evaluation ids [N, H, W],
    under ``title`` (which images these are)."""
    rows, cols = images.shape[0], len(columns) + 1
    height, width = images.shape[-2:]
    size = (2.4 * cols * width / height, 2.4 * rows)
    figure, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    for row in range(rows):
        show_image(axes[row, 0], images[row], "input" if row == 0 else "")
        for col, (name, maps) in enumerate(columns.items(), start=1):
            axes[row, col].imshow(colorize(maps[row], label_space))
            axes[row, col].set_title(name if row == 0 else "", fontsize=8)
            axes[row, col].set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    shown = torch.cat([torch.as_tensor(maps).flatten() for maps in columns.values()]).unique()
    add_class_legend(
        figure, [int(c) for c in shown if c < label_space.num_eval_classes], label_space
    )
    return figure


def add_class_legend(
    figure: plt.Figure,
    class_ids: list[int],
    label_space: LabelSpace,
    dim: float = 1.0,
    extra: tuple[tuple[str, Any], ...] = (),
) -> None:
    """A legend under the figure: each evaluation class shown, in the dataset's official
    colour (times ``dim``) and name, then ``extra`` (label, colour) entries and void (black)."""
    palette = np.array(label_space.palette, dtype=float) / 255 * dim
    handles = [
        Patch(color=palette[c], label=label_space.eval_names[c]) for c in sorted(set(class_ids))
    ]
    handles += [Patch(color=colour, label=label) for label, colour in extra]
    handles.append(Patch(facecolor="black", edgecolor="0.5", label="void / ignored"))
    figure.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(handles), 7),
        fontsize=8,
        frameon=False,
    )


# What Figure 2 calls the loss terms of the records (``SemanticCriterion``'s).
LOSS_NAMES = {"loss_bce": "BCE over one-hot classes"}
PERCENT_KEYS = ("accuracy", "miou")  # rates, drawn in % as the tables give them
AXIS_NAMES = {"accuracy": "pixel accuracy (%)", "miou": "mIoU (%)"}


def plot_curves(histories: dict[str, list[dict[str, Any]]], keys=("loss", "accuracy")):
    """Figure 2: per epoch, training faded and validation solid, one colour per model; rates
    in %, the loss named by its terms (``LOSS_NAMES``)."""
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    terms = sorted({t for r in next(iter(histories.values())) for t in r["train"]})
    loss = ", ".join(LOSS_NAMES.get(t, t) for t in terms if t.startswith("loss_"))
    for axis, key in zip(axes[0], keys):
        scale = 100 if key in PERCENT_KEYS else 1
        for colour, (name, records) in zip(colours, histories.items()):
            epochs = [r["epoch"] + 1 for r in records]
            train = [scale * r["train"][key] for r in records]
            axis.plot(epochs, train, color=colour, alpha=0.35)
            validated = [r for r in records if "val" in r]  # see ``Config.validate_every``
            axis.plot(
                [r["epoch"] + 1 for r in validated],
                [scale * r["val"][key] for r in validated],
                color=colour,
                label=name,
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"loss ({loss})" if key == "loss" and loss else AXIS_NAMES.get(key, key))
        axis.grid(alpha=0.3)
    axes[0, 0].legend(title="faded: train, solid: val", fontsize=8, title_fontsize=8)
    figure.tight_layout()
    return figure


def colorize_segments(
    segment_map: torch.Tensor,
    categories: list[int],
    isthing: list[bool],
    label_space: LabelSpace,
    seed: int = 0,
) -> np.ndarray:
    """A panoptic map [H, W] (0 void, ``s`` = segment ``s``) as RGB: stuff in the dataset's
    palette, dimmed; each thing instance in its own random colour (Figure 6)."""
    generator = np.random.default_rng(seed)
    colours = np.zeros((len(categories) + 1, 3), dtype=np.uint8)
    for s, (category, thing) in enumerate(zip(categories, isthing), start=1):
        if thing:
            colours[s] = generator.integers(40, 256, 3)
        else:
            colours[s] = (np.array(label_space.palette[category]) * 0.45).astype(np.uint8)
    return colours[np.asarray(segment_map)]


# -- one picture of a query: Figures 4-5 and 7-9, and the inspector -----------------------------

MASK_CMAP = "magma"
FADED_ALPHA = 0.3  # the mask of a query that is not confident
FADED_GREY = "0.55"  # its title; its frame is lighter ("0.6")


def segment_colours(count: int) -> np.ndarray:
    """RGB [count + 1, 3] in [0, 1]: black, then ``count`` distinct colours (tab10, then
    hues spaced by the golden ratio), so that no two segments share one."""
    colours = [(0.0, 0.0, 0.0), *[colormaps["tab10"](k)[:3] for k in range(min(count, 10))]]
    for k in range(10, count):
        colours.append(hsv_to_rgb(((k * 0.618034) % 1.0, 0.75, 0.95)))
    return np.array(colours)


def show_segments(axis: plt.Axes, masks: torch.Tensor, title: str, fontsize: float = 8) -> None:
    """Ground-truth segments ``masks`` [K, H, W] (bool), one ``segment_colours`` colour each on
    black."""
    segment_map = np.zeros(masks.shape[-2:], dtype=int)  # 0 background, k + 1 the k-th segment
    for k, mask in enumerate(masks.bool()):
        segment_map[mask.numpy()] = k + 1
    axis.imshow(segment_colours(len(masks))[segment_map], interpolation="nearest")
    axis.set_title(title, fontsize=fontsize, wrap=True)
    axis.set_axis_off()


def query_title(
    prediction: QueryPrediction,
    query: int,
    class_names: tuple[str, ...] | list[str],
    matched: str | None = None,
) -> str:
    """``"q3: car (0.93)"``, and ``"\nGT car"`` when the query was matched to a ground-truth
    segment of that class."""
    title = prediction.describe(query, class_names)
    return title if matched is None else f"{title}\nGT {matched}"


def draw_query(
    axis: plt.Axes,
    probabilities: torch.Tensor,
    title: str,
    confident: bool,
    fontsize: float = 8,
) -> None:
    """A query's mask probability [h, w] under ``title`` (``query_title``), as every figure and
    the inspector show it: in ``MASK_CMAP`` from 0 to 1 when it is confident
    (``QueryPrediction.confident``), else faded, with a grey title, in a grey frame."""
    axis.imshow(
        probabilities.float().cpu().numpy(),
        cmap=MASK_CMAP,
        vmin=0,
        vmax=1,
        alpha=1.0 if confident else FADED_ALPHA,
    )
    axis.set_title(title, fontsize=fontsize, color="black" if confident else FADED_GREY, pad=2)
    axis.set_axis_on()
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(not confident)
        spine.set_edgecolor("0.6")


def add_probability_bar(figure, axes, threshold: float = 0.5, location: str = "bottom") -> None:
    """The colour bar of ``draw_query`` (mask probability, the sigmoid of the mask logits,
    0 to 1) beside ``axes``, saying what a faded query is."""
    colour_bar = figure.colorbar(
        ScalarMappable(Normalize(0, 1), MASK_CMAP),
        ax=list(axes),
        location=location,
        fraction=0.5 if location == "bottom" else 0.15,
        shrink=1.0 if location == "bottom" else 0.35,
        aspect=30 if location == "bottom" else 40,
    )
    colour_bar.set_label(
        "mask probability (faded, grey title: not confident: no object, or a class score "
        f"below {threshold:g})",
        fontsize=8,
    )
    colour_bar.ax.tick_params(labelsize=7)


def plot_query_grid(
    image: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_masks: torch.Tensor,
    class_names: tuple[str, ...] | list[str],
    columns: int = 10,
    matched: dict[int, str] | None = None,
) -> plt.Figure:
    """Every query's mask (sigmoid of ``pred_masks`` [Q, h, w]) drawn by ``draw_query``,
    ``columns`` per row (Figures 7-9: 10x10), under the input. ``matched`` maps a query to the
    class of the ground truth it was matched to."""
    prediction = predict_queries(pred_logits)
    confident = prediction.confident()
    rows = -(-len(pred_masks) // columns) + 1  # the input (and colour bar) on the first row
    height, width = pred_masks.shape[-2:]
    cell = 1.25  # inches per panel's height, title included
    size = (cell * columns * max(width / height, 0.6) * 0.75, cell * rows)
    figure, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    show_image(axes[0, 0], image, "input")
    axes[0, 0].title.set_fontsize(9)
    for query, axis in enumerate(axes[1:].flat[: len(pred_masks)]):
        title = query_title(prediction, query, class_names, (matched or {}).get(query))
        draw_query(axis, pred_masks[query].sigmoid(), title, bool(confident[query]), 7.5)
    figure.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    add_probability_bar(figure, axes[0, 2:5])
    return figure
