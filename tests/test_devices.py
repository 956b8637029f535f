"""Devices: resolution, fast bfloat16, and the precision the paper profile picks from them."""

import pytest
import torch

from seqseg_lib import devices, experiments
from seqseg_lib.experiments import build_config


def test_resolve_device():
    assert devices.resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert devices.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
            devices.resolve_device("cuda")


def test_fast_bfloat16_on_this_cpu_follows_its_instruction_set():
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert devices.fast_bfloat16("cpu") == native


@pytest.mark.parametrize("fast", [False, True])
def test_paper_profile_autocasts_where_bfloat16_is_fast(monkeypatch, fast):
    asked = []
    monkeypatch.setattr(experiments, "fast_bfloat16", lambda d: asked.append(d) or fast)
    assert build_config("unet", "paper", device="cpu").amp is fast
    assert asked == ["cpu"]
    assert build_config("unet", "paper", amp=not fast).amp is (not fast)  # explicit wins
    assert build_config("unet", "cpu").amp is False  # cpu and smoke: float32 everywhere
    assert build_config("seq2seg", "smoke").amp is False


def test_describe_device_names_the_cpu_and_threads():
    text = devices.describe_device("cpu")
    assert text.startswith("cpu (") and f"{torch.get_num_threads()} thread" in text
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert devices.describe_device("cpu").endswith(", 1 thread)")
        torch.set_num_threads(2)
        assert devices.describe_device("cpu").endswith(", 2 threads)")
    finally:
        torch.set_num_threads(threads)
