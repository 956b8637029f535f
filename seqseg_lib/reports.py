"""What the report states, and helpers that turn run directories into table rows.

The report's numbers are kept here once, with their section, so every notebook puts the
same reference beside its own measurements.
"""

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from seqseg_lib.data.labels import LabelSpace
from seqseg_lib.engine import measure_step_time, read_metrics
from seqseg_lib.metrics import confusion_matrix, scores
from seqseg_lib.plotting import plot_segmentations

# Table 1 (Sec. 2.3). Step durations measured with batch 24 on the author's GPU.
REPORT_TABLE1 = {
    "unet": {"parameters": 7.8e6, "step_s": 0.3, "train_accuracy": 90.76, "val_accuracy": 82.75},
    "seq2seg": {
        "parameters": 50.8e6,
        "step_s": 0.2,
        "train_accuracy": 89.65,
        "val_accuracy": 80.20,
    },
    "seq2seg-noskip": {
        "parameters": 50.8e6,
        "step_s": 0.2,
        "train_accuracy": 85.32,
        "val_accuracy": 78.85,
    },
}
REPORT_STEP_RATIO = 0.2 / 0.3  # Seq2Seg step / U-Net step, Sec. 2.2


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def final_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The last epoch's record of a run, flattened: ``train_accuracy``, ``val_miou``, ..."""
    records = read_metrics(run_dir)
    if not records:
        raise ValueError(f"{str(run_dir)!r} has no finished epoch in metrics.jsonl")
    last = records[-1]
    flat = {"epochs": last["epoch"] + 1}
    for split in ("train", "val"):
        for key, value in last[split].items():
            if isinstance(value, float | int):
                flat[f"{split}_{key}"] = value
    return flat


@torch.no_grad()
def majority_class_scores(train_set, val_set, label_space: LabelSpace) -> dict[str, Any]:
    """Scores of the constant predictor that outputs the most frequent training class."""
    counts = torch.zeros(256, dtype=torch.long)
    for item in train_set:
        counts += torch.bincount(label_space.to_eval(item["labels"]).flatten(), minlength=256)
    majority = int(counts[: label_space.num_eval_classes].argmax())
    k = label_space.num_eval_classes
    matrix = torch.zeros(k, k + 1, dtype=torch.long)
    for item in val_set:
        target = label_space.to_eval(item["labels"])
        matrix += confusion_matrix(torch.full_like(target, majority), target, k)
    return scores(matrix) | {"class": label_space.eval_names[majority]}


def _percent(value: float) -> float:
    return round(100 * value, 2)


def table1(configs, run_dirs, models, names, baseline, device="auto") -> pd.DataFrame:
    """Table 1: ours next to the report's, per model, plus the majority-class baseline."""
    columns = {}
    steps = {}
    for key, name in names.items():
        final = final_metrics(run_dirs[key])
        steps[key] = measure_step_time(configs[key], batch_size=24, device=device)
        report = REPORT_TABLE1[key]
        columns[f"{name} (ours)"] = {
            "parameters (M)": round(count_parameters(models[key]) / 1e6, 2),
            "training step, batch 24 (s)": round(steps[key], 3),
            "train accuracy (%)": _percent(final["train_accuracy"]),
            "val accuracy (%)": _percent(final["val_accuracy"]),
            "val mIoU (%)": _percent(final["val_miou"]),
            "epochs": final["epochs"],
        }
        columns[f"{name} (report)"] = {
            "parameters (M)": report["parameters"] / 1e6,
            "training step, batch 24 (s)": report["step_s"],
            "train accuracy (%)": report["train_accuracy"],
            "val accuracy (%)": report["val_accuracy"],
            "val mIoU (%)": None,
            "epochs": {"unet": 30, "seq2seg": 45, "seq2seg-noskip": 45}[key],
        }
    columns[f"majority class '{baseline['class']}'"] = {
        "val accuracy (%)": _percent(baseline["accuracy"]),
        "val mIoU (%)": _percent(baseline["miou"]),
    }
    table = pd.DataFrame(columns)
    if "seq2seg" in steps and "unet" in steps:
        ratio = pd.Series(
            {f"{names['seq2seg']} (ours)": round(steps["seq2seg"] / steps["unet"], 3)},
            name="step ratio Seq2Seg / U-Net",
        )
        ratio[f"{names['seq2seg']} (report)"] = round(REPORT_STEP_RATIO, 3)
        table = pd.concat([table, ratio.to_frame().T])
    return table


def figure_segmentations(val_set, models, names, indices):
    """Figure 1: ground truth then each model's prediction, in evaluation ids."""
    label_space = val_set.label_space
    items = [val_set[i] for i in indices]
    images = torch.stack([item["image"] for item in items])
    columns = {"ground truth": label_space.to_eval(torch.stack([i["labels"] for i in items]))}
    with torch.no_grad():
        for key, model in models.items():
            device = next(model.parameters()).device
            logits = model(images.to(device)).cpu()
            columns[names[key]] = label_space.to_eval(logits.argmax(1))
    return plot_segmentations(images, columns, label_space)


def _verdict(holds: bool) -> str:
    return "reproduced" if holds else "not reproduced"


def compare_table1(table: pd.DataFrame) -> str:
    """One line per claim of Sec. 2.3 about Table 1, with our numbers."""
    ours_unet, ours_s2s = table["U-Net (ours)"], table["Seq2Seg (ours)"]
    baseline = table.filter(like="majority").iloc[:, 0]["val accuracy (%)"]
    worst = min(ours_unet["val accuracy (%)"], ours_s2s["val accuracy (%)"])
    gap = ours_unet["val accuracy (%)"] - ours_s2s["val accuracy (%)"]
    ratio = table.loc["step ratio Seq2Seg / U-Net", "Seq2Seg (ours)"]
    lines = [
        f"U-Net beats Seq2Seg on validation accuracy: {_verdict(gap > 0)} "
        f"(ours {ours_unet['val accuracy (%)']:.2f} vs {ours_s2s['val accuracy (%)']:.2f}, "
        f"gap {gap:.2f} points; report 82.75 vs 80.20, gap 2.55).",
        f"A Seq2Seg training step is faster than a U-Net step: {_verdict(ratio < 1)} "
        f"(ratio {ratio:.2f}; report 0.67, on a GPU with the paper-size models).",
        f"Both beat the majority-class baseline ({baseline:.2f}%): {_verdict(worst > baseline)}.",
        "U-Net maps look more natural: judge Figure 1 (not a number).",
    ]
    return "\n".join(lines)


def skip_table(runs: dict[str, Path], baseline: dict[str, Any]) -> pd.DataFrame:
    """Train / validation accuracy and mIoU of each Seq2Seg variant, with the report's."""
    report = {"Seq2Seg": REPORT_TABLE1["seq2seg"]}
    rows = {}
    for name, run_dir in runs.items():
        final = final_metrics(run_dir)
        reference = REPORT_TABLE1["seq2seg-noskip"] if "no skip" in name else report["Seq2Seg"]
        fails = "no skip" in name and "1e-04" in name
        rows[name] = {
            "train accuracy (%)": _percent(final["train_accuracy"]),
            "val accuracy (%)": _percent(final["val_accuracy"]),
            "val mIoU (%)": _percent(final["val_miou"]),
            "report train accuracy (%)": "fails to train" if fails else reference["train_accuracy"],
            "report val accuracy (%)": "fails to train" if fails else reference["val_accuracy"],
            "epochs": final["epochs"],
        }
    rows[f"majority class '{baseline['class']}'"] = {
        "val accuracy (%)": _percent(baseline["accuracy"]),
        "val mIoU (%)": _percent(baseline["miou"]),
    }
    return pd.DataFrame(rows).T


def compare_skip(table: pd.DataFrame, baseline: dict[str, Any]) -> str:
    """The skip-connection claims of Sec. 2.2-2.3, with our numbers."""
    names = list(table.index)
    skip, no_skip, no_skip_fast = names[0], names[1], names[2]
    val = table["val accuracy (%)"]
    base = 100 * baseline["accuracy"]
    lines = [
        f"The skip connection helps: {_verdict(val[skip] > val[no_skip])} "
        f"(val accuracy {val[skip]:.2f} with, {val[no_skip]:.2f} without; report 80.20 vs 78.85).",
        f"Without skip, lr 1e-4 fails to train: "
        f"{_verdict(val[no_skip_fast] <= base + 1 or val[no_skip_fast] < val[no_skip] - 5)} "
        f"(val accuracy {val[no_skip_fast]:.2f} at 1e-4 vs {val[no_skip]:.2f} at the report's "
        f"5e-5 schedule; majority class {base:.2f}).",
    ]
    return "\n".join(lines)
