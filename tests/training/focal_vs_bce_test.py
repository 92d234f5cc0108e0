"""Focal loss earns its place: on the default synthetic data (1% positives), focal loss
with auto class weights reaches an eval PR-AUC at least as good as plain binary
cross-entropy at the same budget (the default config's 1,500 steps)."""

import pytest

from tests.training import runs

pytestmark = pytest.mark.slow


def test_focal_with_auto_class_weights_is_at_least_as_good_as_bce_on_pr_auc(tmp_path):
    results = {}
    for name, overrides in {
        "focal+auto": {"loss.name": "focal", "loss.class_weights": "auto"},
        "bce": {"loss.name": "bce", "loss.class_weights": "none"},
    }.items():
        workdir = tmp_path / name
        runs.run(runs.train_command("default", workdir, {"train.eval_every": 0, **overrides}))
        results[name] = runs.summary(workdir)["eval"]
    focal, bce = results["focal+auto"]["pr_auc"], results["bce"]["pr_auc"]
    print(f"eval PR-AUC: focal+auto {focal:.4f}, bce {bce:.4f}")
    assert results["focal+auto"]["positive_rate"] == pytest.approx(0.01, abs=0.003)
    assert focal >= bce
