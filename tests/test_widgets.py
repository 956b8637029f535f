import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seqseg_lib.data.scattered_mnist import ScatteredMNIST
from seqseg_lib.models import Seq2SegInstance, Seq2SegInstanceConfig
from seqseg_lib.plotting import segment_colours
from seqseg_lib.queries import predict_queries
from seqseg_lib.widgets import QueryInspector


def fake_digits():
    digits = torch.zeros(10, 28, 28, dtype=torch.uint8)
    for k in range(10):
        digits[k, 6 + k : 14 + k, 8:20] = 255
    return digits.numpy(), torch.arange(10).numpy()


@pytest.fixture(scope="module")
def datasets():
    digits, labels = fake_digits()
    return {
        mode: ScatteredMNIST(
            None, "val", mode=mode, num_images=4, digits=digits, digit_labels=labels
        )
        for mode in ("easy", "hard")
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Seq2SegInstance(
        Seq2SegInstanceConfig(hidden_dim=32, num_layers=1, num_heads=2, ffn_dim=64)
    )


def test_controls_change_what_is_shown(model, datasets):
    inspector = QueryInspector(model, datasets)
    assert inspector.dataset_key == "easy" and inspector.image_index == 0
    assert inspector.shown_queries == list(range(6))
    assert inspector.png.startswith(b"\x89PNG") and inspector.image_widget.value == inspector.png
    assert len(inspector.titles) == 6 and all(t.startswith("q") for t in inspector.titles)
    # Every ground-truth digit is matched to one query, whose title names its label.
    item = datasets["easy"][0]
    assert len(inspector.matched) == len(item["labels"])
    assert sum("GT" in t for t in inspector.titles) == len(item["labels"])
    first_png = inspector.png
    inspector.image_slider.value = 3
    assert inspector.image_index == 3 and inspector.png != first_png
    assert len(inspector.matched) == len(datasets["easy"][3]["labels"])
    inspector.mode_toggle.value = "hard"
    assert inspector.dataset_key == "hard"
    assert len(inspector.matched) == len(datasets["hard"][3]["labels"])


def test_threshold_hides_queries_when_asked(model, datasets):
    inspector = QueryInspector(model, datasets["easy"], hide_below=True, threshold=0.0)
    outputs, _ = inspector.predict("", 0)
    objects = predict_queries(outputs["pred_logits"]).predicts_object
    assert 0 < objects.sum() < 6, "the untrained model says 'no object' for some queries only"
    assert inspector.shown_queries == objects.nonzero()[:, 0].tolist(), "threshold 0: objects"
    assert inspector.mode_toggle not in inspector.widget.children, "no toggle for one dataset"
    inspector.threshold_slider.value = 1.0
    assert inspector.shown_queries == [] and inspector.titles == []
    greyed = QueryInspector(model, datasets["easy"], threshold=1.0)
    assert greyed.shown_queries == list(range(6)), "without hide_below, queries are greyed"


class ManyQueries(nn.Module):
    """Stands in for the Hungarian U-Net of Sec. 4: 100 queries, 19 classes + no object."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        generator = torch.Generator().manual_seed(0)
        batch, _, height, width = images.shape
        return {
            "pred_logits": torch.randn(batch, 100, 20, generator=generator) * self.scale,
            "pred_masks": torch.randn(batch, 100, height, width, generator=generator),
        }


def test_many_queries_are_paginated_with_class_names():
    names = [f"class{k}" for k in range(19)]
    images = [{"image": torch.rand(3, 32, 64)} for _ in range(2)]
    inspector = QueryInspector(ManyQueries(), images, class_names=names, queries_per_page=20)
    assert inspector.page_slider.max == 4
    assert inspector.shown_queries == list(range(20))
    inspector.page_slider.value = 4
    assert inspector.shown_queries == list(range(80, 100))
    assert all("class" in t for t in inspector.titles) and inspector.matched == {}
    with pytest.raises(ValueError, match="class names"):
        QueryInspector(ManyQueries(), images)  # 19 classes, 10 default names


def test_one_page_hides_the_page_slider_and_the_picture_travels(model, datasets):
    inspector = QueryInspector(model, datasets["easy"])
    assert inspector.page_slider.layout.display == "none"  # 6 queries, 20 per page
    bundle = inspector._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]) == inspector.png
    width = int(inspector.image_widget.layout.width.removesuffix("px"))
    assert Image.open(io.BytesIO(inspector.png)).width == width  # drawn at its shown size


def test_no_query_above_the_threshold_says_so(model, datasets):
    inspector = QueryInspector(model, datasets["easy"], hide_below=True, threshold=1.0)
    assert inspector.shown_queries == [] and inspector.png.startswith(b"\x89PNG")


def test_every_ground_truth_segment_has_its_own_colour():
    colours = segment_colours(25)
    assert colours.shape == (26, 3) and (colours[0] == 0).all()
    assert len({tuple(np.round(c, 3)) for c in colours}) == 26


def test_titles_use_the_words_of_the_figures(model, datasets):
    inspector = QueryInspector(model, datasets["easy"])
    outputs, _ = inspector.predict("", 0)
    prediction = predict_queries(outputs["pred_logits"])
    for query, title in zip(inspector.shown_queries, inspector.titles):
        assert title.split("\n")[0] == prediction.describe(query, inspector.class_names)
        assert re.fullmatch(r"q\d+: (\d|no object) \(\d\.\d\d\)", title.split("\n")[0])


def test_the_caption_writes_the_titles_out(model, datasets):
    inspector = QueryInspector(model, datasets)
    caption = inspector.caption.value
    item = datasets["easy"][0]
    digits = ", ".join(inspector.class_names[int(d)] for d in item["labels"])
    assert caption.startswith("<p>easy image 0 (GT: ")
    assert "), threshold 0.50:</p>" in caption
    assert sorted(caption.split("(GT: ")[1].split(")")[0].split(", ")) == sorted(digits.split(", "))
    assert caption.count("<li>") == len(inspector.titles)
    assert inspector.titles[0].replace("\n", ", ") in caption
    inspector.image_slider.value = 1
    assert "easy image 1" in inspector.caption.value
