"""The test the project stands on: every backend trains exactly like one device.

One config, 20 SGD steps with global batch 64 over 1,250 examples (19 full batches
and a short last one of 34), trained under default, mirrored (4 logical CPUs),
multiworker (2 TF_CONFIG processes) and horovod (horovodrun -np 2): per-step losses
and final weights equal to 1e-5 relative.

Each distribution runs four cases that between them hold every model (an MLP with l2,
whose regularisation loss must be counted once and not once per replica; a conv model
that meets an empty replica), both ways of summing a step (`train.allreduce` "single",
and "overlap" with one bucket per variable) and every loss family (focal with auto
class weights; ASL; logit adjustment with the all-reduced prior; FLSD-53 with Poly-1
and each output's alpha from the histogram). An overlapped case is compared with the
one-device run of the plain step, not with itself. One more one-device run without l2
shows that l2 took part.
"""

import numpy as np
import pytest

from tests.training import runs

pytestmark = pytest.mark.slow

EQUIVALENCE_CONFIG = {
    "train.steps": 20,
    "train.global_batch_size": 64,
    "train.steps_per_loop": 5,
    "train.eval_every": 0,
    "train.checkpoint_every": 10,
    "train.deterministic": True,
    "data.num_features": 8,
    "data.shuffle_buffer": 1250,
    "data.synthetic.num_train": 1250,
    "data.synthetic.num_eval": 300,
    "data.synthetic.num_calibration": 256,
    "data.synthetic.positive_rate": 0.1,
    "model.hidden_units": "(16,)",
    "optimizer.name": "sgd",
    "optimizer.learning_rate": 0.5,
    "optimizer.warmup_steps": 0,
    "optimizer.decay": "constant",
    "loss.class_weights": "auto",
}


CONV = "tests.training.conv_model:build"
DISTRIBUTED = ("mirrored", "multiworker", "horovod")
# Overlapped: counts first, then one collective per variable (buckets of 1 byte).
OVERLAP = {"train.allreduce": "overlap", "train.allreduce_bucket_mb": 1e-6}
SINGLE = {"train.allreduce": "single"}
L2 = {"model.l2": 0.01}
ASL = {"loss.name": "asl", "loss.class_weights": "none"}
LOGIT_ADJUSTED = {"loss.name": "logit_adjusted", "loss.class_weights": "none"}
FLSD_POLY = {"loss.gamma_schedule": "flsd53", "loss.poly_epsilon": 1.0, "loss.alpha": "auto"}
# The one-device references (the plain step); "mlp-logit_adjusted" only to show that l2 took part.
REFERENCES = {
    "mlp-l2-logit_adjusted": {**L2, **LOGIT_ADJUSTED, **SINGLE},
    "conv-asl": {"model.name": CONV, **ASL, **SINGLE},
    "mlp-l2-flsd-poly": {**L2, **FLSD_POLY, **SINGLE},
    "conv-focal": {"model.name": CONV, **SINGLE},
    "mlp-logit_adjusted": {**LOGIT_ADJUSTED, **SINGLE},
}
# What each distribution runs, by reference: two cases on the single path, two overlapped.
CASES = {
    "mlp-l2-logit_adjusted": "mlp-l2-logit_adjusted",
    "conv-asl": "conv-asl",
    "mlp-l2-flsd-poly-overlap": "mlp-l2-flsd-poly",
    "conv-focal-overlap": "conv-focal",
}


def _config(case):
    reference = CASES.get(case, case)
    overlap = OVERLAP if case.endswith("-overlap") else {}
    return {**EQUIVALENCE_CONFIG, **REFERENCES[reference], **overlap}


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    results = {}
    for variant in REFERENCES:
        workdir = tmp_path_factory.mktemp(f"default_{variant}")
        runs.run(runs.train_command("default", workdir, _config(variant)))
        results[variant] = runs.summary(workdir), runs.final_weights(workdir), workdir
    return results


@pytest.mark.parametrize(
    ("distribution", "case"),
    [(d, case) for case in CASES for d in DISTRIBUTED],
    ids=lambda value: value,
)
def test_distributed_training_matches_single_device_with_a_short_last_batch(
    distribution, case, single_device, tmp_path
):
    # The conv model meets an empty replica batch: the last global batch of 34 gives the
    # 4 mirrored replicas 16, 16, 2 and 0 examples.
    reference_summary, reference_weights, _ = single_device[CASES[case]]
    runs.run(runs.train_command(distribution, tmp_path, _config(case)))
    summary = runs.summary(tmp_path)
    assert summary["num_replicas"] == {"mirrored": 4, "multiworker": 2, "horovod": 2}[distribution]
    assert len(summary["train_losses"]) == 20
    # The short last batch is step 20: its loss is a mean over 34 examples, not 64.
    np.testing.assert_allclose(
        summary["train_losses"], reference_summary["train_losses"], rtol=1e-5
    )
    for ours, reference in zip(runs.final_weights(tmp_path), reference_weights, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-7)
    assert summary["eval"]["num_examples"] == reference_summary["eval"]["num_examples"] == 300
    # The training changed the model: the comparison is not between two initialisations.
    assert reference_summary["train_losses"][-1] < reference_summary["train_losses"][0]
    if case == "mlp-l2-logit_adjusted":
        # Regularisation took part: without it these runs would end on the l2=0 weights.
        unregularised = single_device["mlp-logit_adjusted"][1]
        assert _max_difference(runs.final_weights(tmp_path), unregularised) > 1e-3


def _max_difference(weights, others) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(weights, others, strict=True))


def test_l2_reaches_the_model_as_regularisation_losses_that_change_training(single_device):
    import keras

    models = {
        l2: keras.models.load_model(workdir / "export" / "model.keras", compile=False)
        for l2, (_, _, workdir) in (
            (0.0, single_device["mlp-logit_adjusted"]),
            (0.01, single_device["mlp-l2-logit_adjusted"]),
        )
    }
    assert models[0.0].losses == []
    regularisation = models[0.01].losses
    assert regularisation, "model.l2=0.01 built a model without regularisation losses"
    kernels = [v.numpy() for v in models[0.01].trainable_variables if "kernel" in v.path]
    np.testing.assert_allclose(
        float(sum(np.sum(r) for r in regularisation)),
        0.01 * sum(float(np.sum(k.astype(np.float64) ** 2)) for k in kernels),
        rtol=1e-5,
    )
    losses = {
        v: np.array(single_device[v][0]["train_losses"])
        for v in ("mlp-logit_adjusted", "mlp-l2-logit_adjusted")
    }
    assert np.abs(losses["mlp-l2-logit_adjusted"] - losses["mlp-logit_adjusted"]).max() > 1e-4
    assert (
        _max_difference(
            single_device["mlp-l2-logit_adjusted"][1], single_device["mlp-logit_adjusted"][1]
        )
        > 1e-3
    )
