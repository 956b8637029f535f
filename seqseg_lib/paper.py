"""Every number and setting the report states, each with its section: the presets, the
models' defaults, the claims and the figures take them from here, and no other module types
a number of the report.

Schmidt-Mengin, "Image Segmentation with Transformers", 2021 (``../shared/paper/``).
"""

# -- Sec. 2.2: data and training of Seq2Seg and U-Net --------------------------------------
CITYSCAPES_TRAIN_IMAGES = 2975  # Cityscapes fine's training split
CITYSCAPES_VAL_IMAGES = 500  # its validation split, on which Table 1 is measured
RESIZE = (140, 280)  # (H, W): "resized to 140x280"
CROP = (128, 256)  # "random crops of 128x256"
BATCH_SIZE = 24  # minibatches of 24
STEPS_PER_EPOCH = 123  # "30 epochs of 123 mini batches": 2,975 // 24
# (epochs, initial learning rate, ((epoch, learning rate from then on), ...)), Adam
SCHEDULES = {
    "unet": (30, 1e-3, ((10, 5e-4), (20, 1e-4))),
    "seq2seg": (45, 1e-4, ((15, 5e-5), (30, 1e-5))),
    # without the skip connection, Seq2Seg "fails to train with a learning rate of 1e-4"
    "seq2seg-noskip": (45, 5e-5, ((15, 1e-5), (30, 5e-6))),
}
EPOCHS = {experiment: schedule[0] for experiment, schedule in SCHEDULES.items()}
SEQ2SEG_LR = SCHEDULES["seq2seg"][1]
NOSKIP_LR = SCHEDULES["seq2seg-noskip"][1]
# Seq2Seg's encoder: 16x16 patches, BERT of 6 layers of width 768 and feed-forward 3072 (12
# heads: BERT-base's for a hidden size of 768, which the report does not state)
PATCH_SIZE = 16
ENCODER = {"hidden_dim": 768, "num_layers": 6, "num_heads": 12, "ffn_dim": 3072}

# -- Table 1 (Sec. 2.3) ----------------------------------------------------------------------
# Parameters, training step (seconds, batch 24, on hardware the report does not name) and
# accuracies (%).
TABLE1 = {
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
STEP_RATIO = TABLE1["seq2seg"]["step_s"] / TABLE1["unet"]["step_s"]  # Seq2Seg / U-Net: 0.67
# "Seq2Seg obtains only 3 percent less in accuracy than U-Net": 2.55 points
GAP = round(TABLE1["unet"]["val_accuracy"] - TABLE1["seq2seg"]["val_accuracy"], 2)
# Table 1's numbers of training steps: the epochs of Sec. 2.2 at 123 steps each
STEPS = {
    label: EPOCHS[experiment] * STEPS_PER_EPOCH
    for label, experiment in (("Seq2Seg", "seq2seg"), ("U-Net", "unet"))
}

# -- Sec. 3.3-3.4: instance segmentation of scattered MNIST ----------------------------------
MNIST_IMAGE_SIZE = 64  # 64x64 images of 1 to 4 digits
MNIST_ENCODER = {"hidden_dim": 512, "num_layers": 4, "num_heads": 8, "ffn_dim": 2048}
MNIST_QUERIES = 6  # N_obj
MNIST_BATCH_SIZE = 64
MNIST_LR = 1e-4  # Adam, no schedule
MNIST_STEPS = 11_256
MNIST_CLASS_WEIGHT = 0.1  # the class loss's weight; the mask (Dice) loss's is 1
MNIST_NO_OBJECT_WEIGHT = 0.5
# digit classification accuracy and "mask dice score" (the Dice loss), per mode
MNIST_RESULTS = {
    "easy": {"accuracy": 0.97, "dice_loss": 0.03},
    "hard": {"accuracy": 0.62, "dice_loss": 0.2},
}

# -- Sec. 4: the Hungarian U-Net --------------------------------------------------------------
PANOPTIC_QUERIES = 100  # N_obj mask channels
PANOPTIC_MATCH_SIZE = (32, 64)  # masks compared at 32x64 for the matching
PANOPTIC_EPOCHS = 30
PANOPTIC_LR = 1e-3
PANOPTIC_LR_MILESTONES = ((10, 5e-4), (20, 1e-4))
