"""Default: synthetic binary data with 1% positives, an MLP, focal loss, auto class weights.

python -m focal_dist.train --config=configs/default.py --workdir=runs/default
python -m focal_dist.train --config=configs/default.py --config.train.steps=2000
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
    config = config_dict.ConfigDict()
    # One reference: the LR schedule decays over train.steps, also when it is overridden.
    steps = config_dict.FieldReference(1500)

    config.task = config_dict.ConfigDict()
    config.task.name = "binary"  # binary | multi_label | multiclass
    config.task.num_classes = 1

    config.data = config_dict.ConfigDict()
    # synthetic | tfrecord | csv | parquet | image_tfrecord | image_folder
    config.data.source = "synthetic"
    config.data.path = ""
    config.data.eval_path = ""
    # Held out for calibration, in data.path's format; "": none.
    config.data.calibration_path = ""
    config.data.label_column = "label"  # TFRecord feature key; comma list for multi-label
    config.data.feature_column = "features"  # TFRecord only; CSV/Parquet: every other column
    config.data.num_features = 32
    # Files: a NaN or inf feature or an invalid label "error" (stops the run, naming file,
    # column and row) or "skip" (the row is dropped in every pass and counted).
    config.data.non_finite = "error"
    # Image folders (image_folder, segmentation_folder): an image that cannot be decoded
    # (cut short, not an image, empty) "error" (stops the run before training, naming
    # it) or "skip" (left out of every split, counted). Every image is decoded once first.
    config.data.bad_files = "error"
    # Files: examples held in the shuffle buffer (0: no shuffle). The synthetic set is
    # in memory: any value > 0 permutes it fully each epoch, the same on every worker.
    config.data.shuffle_buffer = 16384
    # Images (image_tfrecord, image_folder): decoded to [image_size, image_size, channels]
    # floats in [0, 1]. image_tfrecord keys are TF Model Garden's / TF-slim's.
    config.data.image_size = 64
    config.data.channels = 3  # 1 (grey) or 3 (RGB)
    config.data.image_key = "image/encoded"  # JPEG/PNG/GIF/BMP bytes
    config.data.image_label_key = "image/class/label"  # int64; multi_label: list of ids
    config.data.augment = True  # training only: random crop, then random left-right flip
    config.data.crop_min_area = 0.64  # smallest share of the image a training crop keeps
    config.data.synthetic = config_dict.ConfigDict()
    config.data.synthetic.num_train = 65536
    config.data.synthetic.num_eval = 32768
    # Examples num_train + num_eval onwards: train and eval are the same with or without it.
    config.data.synthetic.num_calibration = 16384
    config.data.synthetic.positive_rate = 0.01
    config.data.synthetic.label_noise = 0.0
    config.data.synthetic.hard_fraction = 0.02
    config.data.synthetic.seed = 0

    config.model = config_dict.ConfigDict()
    # mlp | cnn | resnet50 | efficientnet_b0 (Keras Applications, weights=None) |
    # module:function (your own: called with num_outputs, input_shape, and seed/l2 if it
    # takes them, plus model.kwargs; returns a keras.Model of features to logits)
    config.model.name = "mlp"
    config.model.hidden_units = (64, 32)  # mlp
    config.model.filters = (32, 64, 128)  # cnn: one stage of two 3x3 convs per entry
    config.model.kwargs = config_dict.ConfigDict()  # module:function only
    config.model.l2 = 0.0  # L2 penalty on the kernels (counted once over replicas)

    config.loss = config_dict.ConfigDict()
    # focal | bce (binary, multi-label) | ce (multiclass) | asl (binary, multi-label:
    # asymmetric loss) | logit_adjusted (the prior from the label histogram); docs/losses.md
    config.loss.name = "focal"
    config.loss.gamma = 2.0
    # The positive class's weight (applied with apply_class_balancing): a number, one per
    # output, or "auto" (each output's negative share from the histogram, applied).
    config.loss.alpha = config_dict.FieldReference(0.25, field_type=object)
    config.loss.gamma_schedule = "none"  # none | flsd53 (Mukhoti et al.: gamma 5 / 3)
    config.loss.poly_epsilon = 0.0  # Poly-1: + epsilon (1 - p_t)^(gamma + 1)
    config.loss.tau = 1.0  # logit_adjusted: logits + tau log prior
    config.loss.gamma_pos = 0.0  # asl
    config.loss.gamma_neg = 4.0  # asl
    config.loss.clip = 0.05  # asl: probability margin of the negatives
    config.loss.apply_class_balancing = False
    config.loss.label_smoothing = 0.0
    config.loss.class_weights = "auto"  # none | auto (= balanced) | inverse | ...
    config.loss.beta = 0.999  # effective_number

    config.optimizer = config_dict.ConfigDict()
    config.optimizer.name = "adam"  # sgd | momentum | adam
    config.optimizer.learning_rate = 0.003
    config.optimizer.momentum = 0.9
    config.optimizer.warmup_steps = 50
    config.optimizer.decay = "cosine"  # cosine | constant
    config.optimizer.scale_lr_by_replicas = False
    config.optimizer.clip_global_norm = 0.0  # 0: off
    config.optimizer.total_steps = steps

    # After training (docs/deployment.md): calibration fitted on the calibration split
    # (data.calibration_path / data.synthetic.num_calibration): auto (Platt per output;
    # temperature + per-class bias for multiclass) | platt | temperature | none.
    config.calibration = config_dict.ConfigDict()
    config.calibration.method = "auto"
    # The positive rate where the model is deployed, if it differs from the calibration
    # split's (one per output, or a class prior): () for none.
    config.calibration.deploy_positive_rate = config_dict.FieldReference((), field_type=object)
    config.decision = config_dict.ConfigDict()
    # f1 | recall:R | precision:P | cost:K (a missed positive costs K false alarms) |
    # threshold:T; multiclass decides by the argmax of calibrated probabilities.
    config.decision.target = "f1"

    config.train = config_dict.ConfigDict()
    config.train.steps = steps
    config.train.global_batch_size = 256
    config.train.seed = 0
    config.train.steps_per_loop = 50
    config.train.log_every = 100
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    config.train.keep_checkpoints = 3
    config.train.jit_compile = False
    config.train.mixed_precision = False
    config.train.deterministic = False
    # (first, last): trace those steps for TensorBoard's Profile tab; (0, 0): off.
    config.train.profile_steps = (0, 0)
    # How a step's gradients are summed over replicas (training/step.py): "overlap"
    # (counts first, then buckets of allreduce_bucket_mb all-reduced while the backward
    # pass runs), "single" (one collective after it; one loss term) or "auto" (single
    # below 4 MB of gradients, overlap above: docs/benchmarks.md, "Overlap").
    config.train.allreduce = "auto"
    config.train.allreduce_bucket_mb = 4.0
    # Wire dtype of the gradients: none (exact), float16 or bfloat16 (Horovod's
    # Compression.fp16; not exact: docs/scaling.md says how far from one device).
    config.train.allreduce_compression = "none"
    return config
