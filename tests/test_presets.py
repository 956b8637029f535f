"""The presets: one frozen ``Config`` per experiment and profile, what ``build_config`` starts
from; ``paper`` carries the report's values."""

import dataclasses

import pytest

from seqseg_lib import paper
from seqseg_lib.config import PROFILES, Config
from seqseg_lib.experiments import EXPERIMENTS, build_config, sized_for_gpu


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_has_one_preset_per_profile(experiment):
    spec = EXPERIMENTS[experiment]
    assert set(spec.presets) == set(PROFILES)
    for profile, preset in spec.presets.items():
        assert isinstance(preset, Config)
        assert (preset.experiment, preset.profile) == (experiment, profile)
        assert preset.dataset == spec.datasets[0]
        with pytest.raises(dataclasses.FrozenInstanceError):
            preset.lr = 1.0
        # build_config is the preset, its bfloat16 resolved for the device
        built = build_config(experiment, profile, device="cpu")
        assert dataclasses.replace(built, amp=preset.amp) == dataclasses.replace(
            preset, device="cpu"
        )


def test_paper_presets_are_the_report_s():
    seq2seg = EXPERIMENTS["seq2seg"].presets["paper"]
    unet = EXPERIMENTS["unet"].presets["paper"]
    assert (seq2seg.crop, seq2seg.batch_size, seq2seg.epochs) == (paper.CROP, 24, 45)
    assert (seq2seg.model.hidden_dim, seq2seg.model.num_layers) == (768, 6)
    assert (unet.epochs, unet.lr, unet.lr_milestones) == paper.SCHEDULES["unet"]
    mnist = EXPERIMENTS["mnist-easy"].presets["paper"]
    assert (mnist.batch_size, mnist.lr, mnist.model.hidden_dim) == (64, 1e-4, 512)
    hungarian = EXPERIMENTS["hungarian-unet"].presets["paper"]
    assert (hungarian.model.num_queries, hungarian.loss.match_size) == (100, (32, 64))


def test_only_paper_is_sized_for_a_gpu():
    assert [profile for profile in PROFILES if sized_for_gpu(profile)] == ["paper"]


def test_a_preset_on_a_real_dataset_takes_its_geometry_and_classes():
    camvid = build_config("unet", "cpu", "camvid", device="cpu")
    assert (camvid.crop, camvid.model.num_classes) == ((64, 80), 11)
    cityscapes = build_config("seq2seg", "paper", "cityscapes", device="cpu")
    assert (cityscapes.num_train, cityscapes.crop) == (None, paper.CROP)  # the whole split


def test_amp_given_as_none_is_the_preset_s():
    """The command line passes ``amp=None`` when neither --amp nor --no-amp is given."""
    assert build_config("unet", "smoke", amp=None).amp is False
    assert build_config("unet", "smoke", amp=True).amp is True
    paper_amp = build_config("unet", "paper", device="cpu", amp=None).amp
    assert paper_amp == build_config("unet", "paper", device="cpu").amp
