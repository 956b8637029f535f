import math

import pytest
import torch

from seqseg_lib.engine import read_metrics, train
from seqseg_lib.experiments import build_config, get_experiment
from seqseg_lib.losses import SetLossConfig
from seqseg_lib.models import Seq2SegInstanceConfig


@pytest.mark.slow
def test_smoke_training_lowers_the_loss_and_reports_instance_metrics(tmp_path):
    config = build_config("mnist-easy", "smoke")
    records = train(config, tmp_path)
    assert records == read_metrics(tmp_path) and len(records) == config.epochs
    first, last = records[0]["train"], records[-1]["train"]
    assert last["loss"] < first["loss"]
    val = records[-1]["val"]
    for key in ("loss_ce", "loss_dice", "accuracy", "dice_loss", "precision", "recall", "ap"):
        assert key in val
    assert "ap" not in last, "AP is computed on validation only"
    assert all(math.isfinite(val[k]) for k in ("loss", "accuracy", "dice_loss", "ap"))


def test_paper_profile_is_the_reports_recipe():
    config = build_config("mnist-hard", "paper")
    assert (config.batch_size, config.lr, config.lr_milestones) == (64, 1e-4, ())  # Sec. 3.3
    steps = config.epochs * math.ceil(config.num_train / config.batch_size)
    assert steps == 11_256 and not config.drop_last  # Sec. 3.3
    assert (
        config.model == Seq2SegInstanceConfig() and config.loss == SetLossConfig()
    )  # the report's
    criterion = get_experiment("mnist-hard").build_criterion(config)
    assert criterion.weight_dict == {"loss_ce": 0.1, "loss_dice": 1.0}


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_every_profile_builds_its_parts(profile):
    config = build_config("mnist-easy", profile, num_train=2, num_val=2)
    experiment = get_experiment("mnist-easy")
    train_set, val_set = experiment.build_datasets(config)
    assert (train_set.mode, val_set.split) == ("easy", "val")
    assert experiment.build_evaluator(config, val_set).with_ap
    assert not experiment.build_evaluator(config, train_set).with_ap
    images, targets = experiment.collate_fn([train_set[0], train_set[1]])
    model = experiment.build_model(config).eval()
    with torch.no_grad():
        losses = experiment.build_criterion(config)(model(images), targets)
    assert all(math.isfinite(v.item()) for v in losses.values())
