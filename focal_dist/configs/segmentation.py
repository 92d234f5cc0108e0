"""Segmentation of rare structures: per-pixel focal loss, pixel-class weights, a U-Net.

    python -m focal_dist.train --config=segmentation --workdir=runs/seg    # synthetic
    # A folder with images/ and masks/ (PNG class ids, 255 ignored), paired by stem:
    python -m focal_dist.train --config=segmentation --workdir=runs/seg \
        --config.data.source=segmentation_folder --config.data.path=train/ \
        --config.data.eval_path=eval/ --config.task.num_classes=3
    # TFRecords with TF Model Garden's keys:
    python -m focal_dist.train --config=segmentation --workdir=runs/seg \
        --config.data.source=segmentation_tfrecord --config.data.path='train-*.tfrecord'

docs/segmentation.md: the loss terms and their denominators, the masks' checks, the
metrics in summary.json and TensorBoard, batch normalisation under distribution.
"""

from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.task.name = "segmentation"
    config.task.num_classes = 3  # background included
    config.task.eval_images = 3  # eval examples drawn in TensorBoard (input | truth | pred)
    # segmentation_synthetic | segmentation_folder | segmentation_tfrecord
    config.data.source = "segmentation_synthetic"
    config.data.image_size = 32
    config.data.channels = 1
    config.data.ignore_label = 255  # mask value counted nowhere (Model Garden's)
    config.data.image_key = "image/encoded"  # segmentation_tfrecord
    config.data.mask_key = "image/segmentation/class/encoded"  # PNG of class ids
    config.data.shuffle_buffer = 1024
    config.data.synthetic.num_train = 512
    config.data.synthetic.num_eval = 128
    config.data.synthetic.num_calibration = 0
    config.model.name = "unet"  # or module:function returning [B, H, W, C] logits
    config.model.widths = (16, 32, 64)  # unet: channels per level (2 poolings here)
    config.model.batch_norm = True  # unet
    # BatchNormalization over the global batch (every replica and worker); without it
    # each replica normalises by its own rows (docs/segmentation.md).
    config.model.sync_batch_norm = False
    config.loss.name = "focal"  # focal | ce
    config.loss.alpha = 1.0  # class weights carry the balance
    config.loss.class_weights = "auto"  # from the pixel histogram (valid pixels per class)
    config.loss.dice_weight = 0.0  # > 0: + dice_weight * per-image soft Dice (MONAI)
    config.train.global_batch_size = 32
    config.train.steps = 600
    config.train.eval_every = 200
    config.train.checkpoint_every = 200
    config.optimizer.learning_rate = 0.003
    return config
