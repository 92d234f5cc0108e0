"""The Kubernetes manifests: strict schemas, one job per overlay, and what an operator needs.

Every overlay is rendered by kustomize and every document validated strictly (unknown
fields rejected) against Kubernetes' own schemas and the vendored Kubeflow CRDs
(tests/k8s/crds: mpi-operator v0.8.2, training-operator v1.9.0).
"""

import copy
import re
import subprocess

import pytest
import yaml

from tests.k8s.manifests import K8S, OVERLAYS, ROOT, pod_templates, render, validate

RENDERED = [("base", K8S / "base"), *OVERLAYS.items()]
JOB_KINDS = {"mpijob": "MPIJob", "tfjob": "TFJob"}


def _job(overlay: str) -> dict:
    (job,) = [d for d in render(OVERLAYS[overlay]) if d["kind"] == JOB_KINDS[overlay]]
    return job


def _containers(doc: dict):
    for replica, spec in pod_templates(doc).items():
        for container in spec["containers"]:
            yield replica, spec, container


@pytest.mark.parametrize(("name", "path"), RENDERED, ids=[name for name, _ in RENDERED])
def test_every_rendered_document_validates_strictly(name, path):
    docs = render(path)
    assert docs, f"{name} renders nothing"
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize(
    ("overlay", "where", "bad_field"),
    [
        ("mpijob", ("spec", "mpiReplicaSpecs", "Worker"), "restartPolicyy"),
        ("tfjob", ("spec", "tfReplicaSpecs", "Worker", "template", "spec"), "terminationGrace"),
        ("tfjob", ("spec", "runPolicy"), "backoff"),
    ],
)
def test_strict_validation_rejects_an_unknown_job_field(overlay, where, bad_field):
    import jsonschema

    job = copy.deepcopy(_job(overlay))
    node = job
    for key in where:
        node = node[key]
    node[bad_field] = 1
    with pytest.raises(jsonschema.ValidationError, match=bad_field):
        validate(job)


def test_strict_validation_rejects_an_unknown_core_field():
    (deployment,) = [d for d in render(K8S / "base") if d["kind"] == "Deployment"]
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["resorces"] = {}
    with pytest.raises(Exception, match="resorces"):
        validate(bad)


def test_each_overlay_applies_exactly_one_job_and_k8s_root_applies_nothing():
    for overlay, kind in JOB_KINDS.items():
        kinds = sorted(d["kind"] for d in render(OVERLAYS[overlay]))
        assert kinds == sorted([kind, "Deployment", "PersistentVolumeClaim", "Service"])
    # `kubectl apply -k k8s/` would apply both jobs (and MPIJob v2beta1 beside
    # training-operator's v1 CRD fails): there is no kustomization at the root.
    assert not (K8S / "kustomization.yaml").exists()


def test_every_image_is_the_pinned_tag_that_make_image_builds():
    component = yaml.safe_load((K8S / "components/image/kustomization.yaml").read_text())
    (image,) = component["images"]
    tag = image["newTag"]
    assert tag
    assert tag != "latest"
    expected = f"{image['newName']}:{tag}"
    for _, path in RENDERED:
        for doc in render(path):
            if doc["kind"] in ("Deployment", "MPIJob", "TFJob"):
                for _, _, container in _containers(doc):
                    assert container["image"] == expected, (doc["kind"], container["name"])
                    assert container["imagePullPolicy"] == "IfNotPresent"
    dry_run = subprocess.run(
        ["make", "-n", "image"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert f"-t focal-dist:{tag} ." in dry_run, dry_run


def test_the_rwx_volume_names_a_storage_class():
    for _, path in RENDERED:
        (pvc,) = [d for d in render(path) if d["kind"] == "PersistentVolumeClaim"]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        assert pvc["spec"]["storageClassName"] not in ("", None, "set-in-kustomization")
    docs = (ROOT / "docs" / "operations.md").read_text()
    assert "storageClassName" in docs


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_pod_has_resources_and_probes(overlay):
    for doc in render(OVERLAYS[overlay]):
        if doc["kind"] not in ("Deployment", "MPIJob", "TFJob"):
            continue
        for replica, _, container in _containers(doc):
            where = f"{doc['kind']} {replica} {container['name']}"
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), where
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where


def test_tensorboard_probes_its_http_port_and_runs_read_only_as_non_root():
    (deployment,) = [d for d in render(K8S / "base") if d["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["volumeMounts"][0]["readOnly"] is True


def test_jobs_restart_into_their_checkpoint_on_preemption():
    tfjob = _job("tfjob")
    (worker,) = tfjob["spec"]["tfReplicaSpecs"].values()
    # ExitCode: 143 (SIGTERM, checkpoint saved) is retried; 1-127 fail the job.
    assert worker["restartPolicy"] == "ExitCode"
    assert tfjob["spec"]["runPolicy"]["backoffLimit"] >= 3
    mpijob = _job("mpijob")
    specs = mpijob["spec"]["mpiReplicaSpecs"]
    assert specs["Launcher"]["restartPolicy"] == "OnFailure"
    assert mpijob["spec"]["runPolicy"]["backoffLimit"] >= 3
    # A bare sshd as PID 1 would swallow the pod's SIGTERM.
    (worker_container,) = specs["Worker"]["template"]["spec"]["containers"]
    assert worker_container["command"] == ["/app/launch/mpi_worker.sh"]
    assert (ROOT / "launch" / "mpi_worker.sh").stat().st_mode & 0o111
    for spec in (worker["template"]["spec"], specs["Worker"]["template"]["spec"]):
        assert spec["terminationGracePeriodSeconds"] >= 60


def test_thread_pools_follow_the_cpu_limit():
    tfjob = _job("tfjob")
    ((_, _, container),) = list(_containers(tfjob))
    env = {e["name"]: e for e in container["env"]}
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        ref = env[name]["valueFrom"]["resourceFieldRef"]
        assert ref == {"containerName": "tensorflow", "resource": "limits.cpu", "divisor": "1"}
    # MPI ranks start under sshd, without the pod's env: each rank sizes itself
    # (launch/horovod.sh starts it through launch/rank.sh and launch/cpu_limit.sh).
    launcher = _job("mpijob")["spec"]["mpiReplicaSpecs"]["Launcher"]
    command = launcher["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "/app/launch/horovod.sh"
    assert '"${root}/launch/rank.sh" "${python}"' in (ROOT / "launch/horovod.sh").read_text()
    assert '/cpu_limit.sh" "$@"' in (ROOT / "launch/rank.sh").read_text()


def test_each_job_writes_to_its_own_work_dir_on_the_shared_volume():
    workdirs = {}
    for overlay in OVERLAYS:
        text = yaml.safe_dump(_job(overlay))
        (workdir,) = re.findall(r"--workdir=(\S+)", text)
        workdirs[overlay] = workdir
        mounts = [
            m["mountPath"]
            for _, _, c in _containers(_job(overlay))
            for m in c.get("volumeMounts", [])
        ]
        assert any(workdir.startswith(mount + "/") for mount in mounts), (workdir, mounts)
    assert workdirs == {"mpijob": "/runs/horovod", "tfjob": "/runs/multiworker"}


def _train_flags(command: list[str]) -> list[str]:
    if "focal_dist.train" in command:  # python -m focal_dist.train <flags>
        return command[command.index("focal_dist.train") + 1 :]
    return command[command.index("--") + 1 :]  # launch/horovod.sh ... -- <flags>


@pytest.mark.parametrize(
    ("overlay", "distribution"), [("mpijob", "horovod"), ("tfjob", "multiworker")]
)
def test_jobs_run_focal_dist_train_with_flags_it_accepts(overlay, distribution):
    from absl import flags

    import focal_dist.train  # noqa: F401  (defines the flags)

    command = next(
        c["command"]
        for _, _, c in _containers(_job(overlay))
        if "focal_dist.train" in c["command"] or c["command"][0].endswith("horovod.sh")
    )
    cli = _train_flags(command)
    if overlay == "tfjob":
        assert f"--distribution={distribution}" in cli
    else:  # launch/horovod.sh adds it and refuses it among the flags
        assert "--distribution=horovod" in (ROOT / "launch/horovod.sh").read_text()
    names = {arg.split("=")[0].lstrip("-") for arg in cli}
    assert names <= set(flags.FLAGS), names - set(flags.FLAGS)
    config = next(arg.split("=", 1)[1] for arg in cli if arg.startswith("--config="))
    assert (ROOT / config.removeprefix("/app/")).exists()
