"""The prediction job (k8s/overlays/predict): strict schemas, the pinned image, and its
own command rehearsed here as the training operator runs it, two workers with TF_CONFIG
on 127.0.0.1 scoring the shared volume's files: every row once."""

import csv
import json
import subprocess

import numpy as np
import pytest
import yaml

from tests.k8s.manifests import K8S, pod_templates, render, validate
from tests.k8s.rehearsal_test import _communicate, _container_env, _free_ports, _here, _stop_tree
from tests.training import runs

PREDICT = K8S / "overlays" / "predict"


def _job() -> dict:
    (job,) = [d for d in render(PREDICT) if d["kind"] == "TFJob"]
    return job


def test_the_prediction_overlay_validates_strictly_and_applies_one_job():
    docs = render(PREDICT)
    for doc in docs:
        validate(doc)
    assert sorted(d["kind"] for d in docs) == sorted(
        ["TFJob", "Deployment", "PersistentVolumeClaim", "Service"]
    )
    component = yaml.safe_load((K8S / "components/image/kustomization.yaml").read_text())
    (image,) = component["images"]
    for spec in pod_templates(_job()).values():
        for container in spec["containers"]:
            assert container["image"] == f"{image['newName']}:{image['newTag']}"
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert "readinessProbe" in container


def _write_csv(path, rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).round(4)
    y = (x[:, 0] > 1.2).astype(int)
    lines = ["label,f0,f1,f2,f3"] + [
        ",".join([str(a), *map(str, b)]) for a, b in zip(y, x, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_prediction_job_command_scores_every_row_of_the_volume_once(tmp_path):
    volume = tmp_path / "runs"
    (volume / "score").mkdir(parents=True)
    _write_csv(volume / "train.csv", 2000, 0)
    _write_csv(volume / "calibration.csv", 500, 1)
    for name, rows in (("a", 301), ("b", 7), ("c", 64)):
        _write_csv(volume / "score" / f"{name}.csv", rows, 2)
    # The run whose export the job uses, where the manifest expects it.
    overrides = {
        "data.path": volume / "train.csv",
        "data.calibration_path": volume / "calibration.csv",
        "train.steps": 20,
        "train.eval_every": 0,
        "train.checkpoint_every": 20,
    }
    runs.run(runs.train_command("default", volume / "multiworker", overrides, "configs/csv.py"))
    (replica,) = _job()["spec"]["tfReplicaSpecs"].values()
    (container,) = replica["template"]["spec"]["containers"]
    command = [_here(arg, volume) for arg in container["command"]]
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(replica["replicas"])]
    workers = []
    try:
        for index in range(replica["replicas"]):
            worker_env = {**runs.env(), **_container_env(container, volume)}
            worker_env["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
            )
            workers.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=worker_env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
        outputs = [_communicate(p, 300) for p in workers]
    finally:
        for p in workers:
            _stop_tree(p)
    assert [p.returncode for p in workers] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    output = volume / "predictions" / "multiworker"
    keys = []
    for part in sorted(output.glob("part-*.csv")):
        with open(part) as handle:
            keys += [(r["file"], int(r["row"])) for r in csv.DictReader(handle)]
    assert len(keys) == len(set(keys)) == 301 + 7 + 64
    assert len(list(output.glob("part-*.csv"))) == 2
    assert json.loads((output / "prediction.json").read_text())["rows"] == 372
