"""The Kubernetes manifests parse and start the real CLI with flags it accepts."""

from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).resolve().parents[1] / "k8s"


def _documents():
    return [
        doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
    ]


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


@pytest.mark.parametrize(
    ("kind", "distribution"), [("MPIJob", "horovod"), ("TFJob", "multiworker")]
)
def test_jobs_run_focal_dist_train_with_the_matching_distribution(kind, distribution):
    from absl import flags

    import focal_dist.train  # noqa: F401  (defines the flags)

    job = next(doc for doc in _documents() if doc["kind"] == kind)
    text = yaml.safe_dump(job)
    assert "focal_dist.train" in text
    assert f"--distribution={distribution}" in text
    specs = job["spec"].get("mpiReplicaSpecs") or job["spec"]["tfReplicaSpecs"]
    command = next(
        c["command"]
        for spec in specs.values()
        for c in spec["template"]["spec"]["containers"]
        if "command" in c
    )
    cli = command[command.index("focal_dist.train") + 1 :]
    names = {arg.split("=")[0].lstrip("-") for arg in cli}
    assert names <= set(flags.FLAGS), names - set(flags.FLAGS)
    assert (K8S.parent / "configs" / "default.py").exists()
