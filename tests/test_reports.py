"""Report helpers: claims computed from tables, and reports/README.md written from them."""

import json

import pandas as pd

from seqseg_lib import reports


def table1(unet_val: float, s2s_val: float, ratio: float) -> pd.DataFrame:
    rows = ["parameters (M)", "val accuracy (%)", "val mIoU (%)", "step ratio Seq2Seg / U-Net"]
    return pd.DataFrame(
        {
            "U-Net (ours)": [7.76, unet_val, 30.0, None],
            "U-Net (report)": [7.8, 82.75, None, None],
            "Seq2Seg (ours)": [3.6, s2s_val, 20.0, ratio],
            "Seq2Seg (report)": [50.8, 80.2, None, 0.667],
            "majority class 'road'": [None, 30.0, 2.0, None],
        },
        index=rows,
    )


def test_claims_follow_the_numbers():
    text = reports.compare_table1(table1(80.0, 78.0, 0.6))
    assert "U-Net beats Seq2Seg on validation accuracy: reproduced" in text
    assert "faster than a U-Net step: reproduced (ratio 0.60" in text
    text = reports.compare_table1(table1(70.0, 78.0, 1.3))
    assert "U-Net beats Seq2Seg on validation accuracy: not reproduced" in text
    assert "faster than a U-Net step: not reproduced" in text


def test_summarize_writes_every_table_with_its_provenance(tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    for dataset in ("synthetic", "camvid"):
        meta = {"profile": "cpu", "dataset": dataset, "device": "cpu", "seed": "0", "date": "x"}
        table1(80.0, 78.0, 0.6).to_csv(folder / f"table1_{dataset}_cpu.csv")
        (folder / f"table1_{dataset}_cpu.json").write_text(json.dumps(meta))
    text = reports.summarize(tmp_path).read_text()
    assert text.index("— camvid, cpu profile") < text.index("— synthetic, cpu profile")
    assert text.count("U-Net beats Seq2Seg on validation accuracy: reproduced") == 2
    assert "_profile: cpu, dataset: camvid, device: cpu, seed: 0, date: x_" in text


def test_spread_indices():
    assert reports.spread_indices(101, 4) == [0, 33, 67, 100]
    assert reports.spread_indices(3, 5) == [0, 1, 2]


def test_query_grid_is_ten_by_ten_under_the_input():
    import torch

    from seqseg_lib.plotting import plot_query_grid

    logits = torch.zeros(100, 20)
    logits[7, 13] = 10.0  # query 7: a confident car
    figure = plot_query_grid(
        torch.rand(3, 8, 16),
        logits,
        torch.randn(100, 8, 16),
        [f"c{i}" for i in range(19)],
        matched={7: "car"},
    )
    titled = [a.get_title() for a in figure.axes if a.get_title()]
    assert len(figure.axes) == 110 and titled[0] == "input" and len(titled) == 101
    assert titled[8].startswith("q7 c13 1.00") and titled[8].endswith("GT car")
