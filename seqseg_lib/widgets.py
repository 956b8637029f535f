"""Interactive inspection of object queries (Figures 4, 5 and 7-9) with ipywidgets 8.

``QueryInspector(model, dataset)`` shows, for one image: the input, its ground-truth instances
and each query's mask with what it predicts (a class and its probability, or "no object");
queries matched to a ground-truth
instance (``HungarianMatcher``, as in training) carry that instance's label. Controls: an
image slider, an easy/hard toggle when ``dataset`` is a dict of datasets, a confidence
threshold (queries below it are drawn faded in a grey frame, or hidden with
``hide_below=True``) and a page slider, shown only when the queries take more than one page
(the 100 of the Hungarian U-Net, Sec. 4). Titles use the words of Figures 4-5
(``QueryPrediction.describe``); a colour bar gives the mask probabilities; each ground-truth
segment has its own colour.

Nothing blocks and nothing needs a browser: the figure is rendered to PNG bytes (Agg, no
pyplot state) into an ``ipywidgets.Image``, and the current state is exposed as attributes
(``image_index``, ``dataset_key``, ``shown_queries``, ``titles``, ``png``) for tests and
headless notebooks. The titles are also written out as text under the picture (``caption``),
for screen readers and for tests in a browser. Displayed, it also carries a PNG of its
current state, which an executed notebook keeps where no widget can run.
"""

import base64
import io
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from seqseg_lib.matcher import HungarianMatcher, resize_masks
from seqseg_lib.plotting import add_probability_bar, draw_query, query_title, show_segments
from seqseg_lib.queries import QueryPrediction, predict_queries

COLUMNS = 6  # panels per row, as the 6 queries of Figures 4-5 (fewer for wide images)
WIDTH = 9.0  # inches at most of a row of panels: shown at DPI, its 8-point titles stay legible
ROWS = 4  # rows of panels a page fills by default (input and ground truth included)
DPI = 100


def columns_for(image: torch.Tensor) -> int:
    """Panels per row for images like ``image`` [C, H, W]: ``COLUMNS`` of 1.3-inch squares,
    fewer for wide images (street scenes: 3), so that a row stays within ``WIDTH``."""
    aspect = image.shape[-1] / image.shape[-2]
    return max(3, min(COLUMNS, int(WIDTH // (1.3 * aspect))))


def instance_targets(item: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The default ``target_fn``: an item's ``labels`` [N] and ``masks`` [N, H, W] if it has
    instance masks (Scattered MNIST), else None (no ground truth shown or matched)."""
    if "masks" not in item or item["labels"].dim() != 1:
        return None
    return {"labels": item["labels"], "masks": item["masks"]}


class QueryInspector:
    """Per-query masks of ``model`` on one image of ``dataset`` at a time.

    ``model(images [1, C, H, W]) -> {"pred_logits": [1, Q, K + 1], "pred_masks": [1, Q, h,
    w]}``; ``dataset[i]["image"]`` is [C, H, W]; ``dataset`` may be a dict of datasets
    (e.g. ``{"easy": ..., "hard": ...}``). ``class_names`` names the K classes (default the
    digits 0-9). Queries are confident, and labelled, as ``seqseg_lib.queries`` defines it.
    ``target_fn(item)`` gives the ground truth ``{"labels", "masks"}`` or None.
    ``queries_per_page`` defaults to what fills ``ROWS`` rows of panels (22 queries on MNIST's
    square images, 10 on street scenes); ``hide_below`` shows only the confident queries.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any,
        class_names: Sequence[str] | None = None,
        threshold: float = 0.5,
        queries_per_page: int | None = None,
        hide_below: bool = False,
        matcher: HungarianMatcher | None = None,
        target_fn: Callable[[dict], dict | None] = instance_targets,
    ) -> None:
        self.model = model
        self.datasets = dict(dataset) if isinstance(dataset, dict) else {"": dataset}
        if not self.datasets or any(len(d) == 0 for d in self.datasets.values()):
            raise ValueError("QueryInspector needs at least one non-empty dataset")
        if queries_per_page is not None and queries_per_page <= 0:
            raise ValueError(f"queries_per_page must be positive, got {queries_per_page}")
        self.class_names = list(class_names or [str(d) for d in range(10)])
        self.queries_per_page, self.hide_below = queries_per_page, hide_below
        self.matcher = matcher or HungarianMatcher()
        self.target_fn = target_fn
        self._cache: dict[tuple[str, int], tuple[dict, dict | None]] = {}
        self.shown_queries: list[int] = []
        self.titles: list[str] = []
        self.matched: dict[int, int] = {}  # query -> ground-truth index
        self.png = b""
        self._build_controls(threshold)
        self.refresh()
        for control in self._controls():
            control.observe(lambda change: self.refresh(), names="value")

    # -- controls ------------------------------------------------------------------------
    def _build_controls(self, threshold: float) -> None:
        first = next(iter(self.datasets))
        self.mode_toggle = widgets.ToggleButtons(options=list(self.datasets), value=first)
        self.image_slider = widgets.IntSlider(
            value=0, min=0, max=len(self.datasets[first]) - 1, description="image"
        )
        self.threshold_slider = widgets.FloatSlider(
            value=threshold, min=0.0, max=1.0, step=0.01, description="threshold"
        )
        self.page_slider = widgets.IntSlider(value=0, min=0, max=0, description="page")
        self.image_widget = widgets.Image(format="png")
        self.caption = widgets.HTML()
        rows = [self.image_slider, self.threshold_slider, self.page_slider]
        rows += [self.image_widget, self.caption]
        if len(self.datasets) > 1:
            rows.insert(0, self.mode_toggle)
        self.widget = widgets.VBox(rows)

    def _controls(self) -> list[widgets.Widget]:
        return [self.mode_toggle, self.image_slider, self.threshold_slider, self.page_slider]

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, and a picture of its current state for where widgets do not run
        (an executed notebook read later, GitHub): each front end shows what it can."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        return dict(bundle) | {"image/png": base64.b64encode(self.png).decode()}

    @property
    def dataset_key(self) -> str:
        return self.mode_toggle.value

    @property
    def image_index(self) -> int:
        return self.image_slider.value

    # -- state ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, key: str, index: int) -> tuple[dict, dict | None]:
        """The model's outputs for one image (CPU, batch dimension dropped) and its targets."""
        if (key, index) not in self._cache:
            item = self.datasets[key][index]
            was_training = self.model.training
            self.model.eval()
            device = next(self.model.parameters()).device
            outputs = self.model(item["image"][None].to(device))
            self.model.train(was_training)
            outputs = {k: outputs[k][0].float().cpu() for k in ("pred_logits", "pred_masks")}
            outputs["image"] = item["image"]
            self._cache[key, index] = (outputs, self.target_fn(item))
        return self._cache[key, index]

    def refresh(self) -> None:
        """Recompute the shown queries, titles and figure from the controls' values."""
        dataset = self.datasets[self.dataset_key]
        self.image_slider.max = len(dataset) - 1
        outputs, target = self.predict(self.dataset_key, self.image_index)
        num_classes = outputs["pred_logits"].shape[-1] - 1
        if len(self.class_names) < num_classes:
            raise ValueError(
                f"the model predicts {num_classes} classes but {len(self.class_names)} class "
                "names were given"
            )
        prediction = predict_queries(outputs["pred_logits"])
        confident = prediction.confident(self.threshold_slider.value)  # (Q,)
        self.matched = self._match(outputs, target)
        candidates = list(range(len(confident)))
        if self.hide_below:
            candidates = [q for q in candidates if confident[q]]
        per_page = self.queries_per_page or ROWS * columns_for(outputs["image"]) - 2
        pages = max(1, math.ceil(len(candidates) / per_page))
        self.page_slider.max = pages - 1
        self.page_slider.layout.display = "none" if pages == 1 else None  # one page: no slider
        start = min(self.page_slider.value, pages - 1) * per_page
        self.shown_queries = candidates[start : start + per_page]
        self.titles = [self._title(q, prediction, target) for q in self.shown_queries]
        self.png = self._render(outputs, target, confident)
        self.image_widget.value = self.png
        self.caption.value = self._caption(confident, target)

    def _caption(self, confident: torch.Tensor, target: dict | None) -> str:
        """The ground truth and the shown queries' titles as text, in the order of the
        picture."""
        where = f"{self.dataset_key} image" if self.dataset_key else "image"
        where = f"{where} {self.image_index}"
        if target is not None and len(target["labels"]):
            where = f"{where} (GT: {self._gt_summary(target)})"
        items = [
            f"<li>{title.replace(chr(10), ', ')}{'' if confident[query] else ' (below)'}</li>"
            for query, title in zip(self.shown_queries, self.titles)
        ]
        threshold = self.threshold_slider.value
        head = f"{where}, threshold {threshold:.2f}"
        if not items:
            return f"<p>{head}: no query above the threshold</p>"
        return f'<p>{head}:</p><ul class="seqseg-queries">{"".join(items)}</ul>'

    def _match(self, outputs: dict, target: dict | None) -> dict[int, int]:
        if target is None or len(target["labels"]) == 0:
            return {}
        batched = {k: outputs[k][None] for k in ("pred_logits", "pred_masks")}
        ((src, tgt),) = self.matcher(batched, [target])
        return dict(zip(src.tolist(), tgt.tolist()))

    def _title(self, query: int, prediction: QueryPrediction, target) -> str:
        matched = None
        if query in self.matched:
            matched = self.class_names[target["labels"][self.matched[query]]]
        return query_title(prediction, query, self.class_names, matched)  # as in the figures

    # -- figure --------------------------------------------------------------------------
    def _render(self, outputs: dict, target: dict | None, confident: torch.Tensor) -> bytes:
        """Input, ground truth, then the shown queries' mask probabilities, as PNG bytes."""
        image = outputs["image"].permute(1, 2, 0).numpy().clip(0, 1)  # (H, W, C)
        aspect = image.shape[1] / image.shape[0]
        columns = columns_for(outputs["image"])
        panels = 2 + max(len(self.shown_queries), 1)
        rows = math.ceil(panels / columns)
        # panels 1.3 inches high (and 1.3 x aspect wide), under a two-line title
        figure = Figure(figsize=(1.3 * aspect * columns, 1.7 * rows + 0.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for axis in axes:
            axis.set_axis_off()
        axes[0].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        axes[0].set_title("input", fontsize=9)
        self._draw_targets(axes[1], target)
        size = tuple(image.shape[:2])
        probs = resize_masks(outputs["pred_masks"], size).sigmoid()  # (Q, H, W)
        for axis, query, title in zip(axes[2:], self.shown_queries, self.titles):
            draw_query(axis, probs[query], title, bool(confident[query]))
        threshold = self.threshold_slider.value
        if not self.shown_queries:
            axes[2].text(0.0, 0.5, f"no query above the threshold {threshold:.2f}", fontsize=9)
        else:
            add_probability_bar(figure, axes, threshold=threshold, location="top")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        width = int(round(figure.get_figwidth() * DPI))
        self.image_widget.layout.width = f"{width}px"  # shown at the resolution it is drawn
        return buffer.getvalue()

    def _draw_targets(self, axis, target: dict | None) -> None:
        if target is None:
            axis.set_title("no ground truth", fontsize=7)
            return
        show_segments(axis, target["masks"], f"GT: {self._gt_summary(target, most=4)}")

    def _gt_summary(self, target: dict, most: int | None = None) -> str:
        """'11 person, bus, ...': the ground truth's classes, most segments first, the first
        ``most`` of them (the rest counted)."""
        counts = Counter(self.class_names[int(label)] for label in target["labels"])
        parts = [f"{n} {name}" if n > 1 else name for name, n in counts.most_common()]
        if most is not None and len(parts) > most:
            parts = parts[:most] + [f"+{len(parts) - most} more"]
        return ", ".join(parts)
