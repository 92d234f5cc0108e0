"""Image classification: 4 classes from image folders or TFRecords, a small CNN.

    python -m focal_dist.train --config=configs/images.py --workdir=runs/images \
        --config.data.path=train/ --config.data.eval_path=eval/
    # TFRecords (image/encoded + image/class/label), binary 0/1 labels:
    python -m focal_dist.train --config=configs/images.py --workdir=runs/images \
        --config.data.source=image_tfrecord --config.data.path='train-*.tfrecord' \
        --config.task.name=binary

image_folder: one subfolder per class; class k is the k-th name in sorted order (the
run logs the mapping). task.num_classes must equal the number of folders (2 for binary).
"""

from focal_dist.configs import default


def get_config():
    config = default.get_config()
    config.task.name = "multiclass"  # binary (0/1 labels) | multi_label (image_tfrecord)
    config.task.num_classes = 4
    config.data.source = "image_folder"  # or image_tfrecord
    config.data.path = ""  # required: a folder of class folders, or TFRecord files
    config.data.eval_path = ""  # default: data.path
    config.data.image_size = 64
    config.data.channels = 3
    config.data.shuffle_buffer = 2048  # encoded images: ~2048 files held in memory
    config.model.name = "cnn"  # or resnet50, efficientnet_b0, module:function
    config.loss.name = "focal"
    config.loss.alpha = 1.0  # multiclass: class weights carry the balance
    config.train.global_batch_size = 64
    config.train.steps = 2000
    config.optimizer.learning_rate = 0.001
    return config
