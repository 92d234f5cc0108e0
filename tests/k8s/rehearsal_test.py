"""Each job's own command, run here the way its operator would run it, preempted and resumed.

The commands, environment and paths come from the rendered overlays; only what a cluster
provides is stood in for: /app is this checkout, /runs a temporary folder (the RWX
volume), `eth0` is `lo`, the MPI operator's hostfile lists `localhost slots=2`, and the
training operator's TF_CONFIG names two ports on 127.0.0.1. A short run's config is
appended to the flags. SIGTERM reaches one trainer, as when one pod is evicted: every
process must exit 143 (retried by the operator) after a checkpoint, and the same
commands then resume to the end, with checkpoints and TensorBoard events where the
manifests' TensorBoard and restarts expect them.
"""

import json
import math
import os
import signal
import socket
import subprocess

import pytest

from tests.k8s.manifests import OVERLAYS, ROOT, render
from tests.launch.processes import SMALL_RUN, checkpoint_steps, trainers, wait_for
from tests.training.runs import env, summary

SHORT = [f"--config.{key}={value}" for key, value in SMALL_RUN.items()]


def _job(kind: str) -> dict:
    overlay = {"MPIJob": "mpijob", "TFJob": "tfjob"}[kind]
    (job,) = [d for d in render(OVERLAYS[overlay]) if d["kind"] == kind]
    return job


def _here(value: str, runs) -> str:
    return value.replace("/app/", f"{ROOT}/").replace("/runs/", f"{runs}/").replace("eth0", "lo")


def _container_env(container: dict, runs) -> dict:
    values = {}
    for item in container.get("env", []):
        if "value" in item:
            values[item["name"]] = _here(item["value"], runs)
        else:  # resourceFieldRef: the kubelet's rounding up to whole divisors
            ref = item["valueFrom"]["resourceFieldRef"]
            limit = container["resources"]["limits"][ref["resource"].split(".")[1]]
            values[item["name"]] = str(math.ceil(float(limit) / float(ref["divisor"])))
    if "PYTHONPATH" in values:
        values["PYTHONPATH"] = str(ROOT)
    return values


def _communicate(process, timeout):
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        out = process.communicate()[0]
        raise AssertionError(f"still running after {timeout}s:\n{out[-4000:]}") from None


def _stop_tree(process):
    if process.poll() is None:
        for pid in trainers(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.communicate()


def _check_files(workdir, saved):
    assert (workdir / "checkpoints" / f"ckpt-{saved}.index").exists()
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_mpijob_launcher_command_is_preempted_by_a_worker_and_resumes(tmp_path):
    (launcher,) = _job("MPIJob")["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"][
        "containers"
    ]
    runs = tmp_path / "runs"
    runs.mkdir()
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=2\n")
    command = [_here(arg, runs) for arg in launcher["command"]] + SHORT
    launcher_env = {
        **env(),
        **_container_env(launcher, runs),
        "OMPI_MCA_orte_default_hostfile": str(hostfile),
        "K_MPI_JOB_ROLE": "launcher",
    }
    # mpirun waits this long before it kills ranks that already stopped: keep it short here.
    launcher_env["OMPI_MCA_odls_base_sigkill_timeout"] = "5"
    workdir = runs / "horovod"

    def start():
        return subprocess.Popen(
            command, cwd=tmp_path, env=launcher_env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    process = start()
    try:
        wait_for(lambda: checkpoint_steps(workdir), 180, "a first checkpoint", process)
        # launch/mpi_worker.sh, on the evicted worker pod, sends SIGTERM to its trainer.
        (rank_1,) = [
            pid
            for pid, e in trainers(process.pid).items()
            if e.get("OMPI_COMM_WORLD_RANK", e.get("HOROVOD_RANK")) == "1"
        ]
        os.kill(rank_1, signal.SIGTERM)
        out = _communicate(process, 240)
    finally:
        _stop_tree(process)
    assert process.returncode == 143, out[-4000:]
    assert "+ " in out.splitlines()[0]
    assert f"--hostfile {hostfile} --network-interfaces lo --mpi" in out.splitlines()[0]
    saved = checkpoint_steps(workdir)[-1]
    assert saved < SMALL_RUN["train.steps"]
    _check_files(workdir, saved)

    process = start()
    out = _communicate(process, 300)
    assert process.returncode == 0, out[-4000:]
    result = summary(workdir)
    assert result["step"] == SMALL_RUN["train.steps"]
    assert result["resumed_from_step"] == saved
    _check_files(workdir, SMALL_RUN["train.steps"])


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_tfjob_worker_command_is_preempted_on_one_worker_and_resumes(tmp_path):
    tfjob = _job("TFJob")
    (replica,) = tfjob["spec"]["tfReplicaSpecs"].values()
    (container,) = replica["template"]["spec"]["containers"]
    runs = tmp_path / "runs"
    runs.mkdir()
    command = [_here(arg, runs) for arg in container["command"]] + SHORT
    workdir = runs / "multiworker"

    def start_workers():
        hosts = [f"127.0.0.1:{port}" for port in _free_ports(replica["replicas"])]
        processes = []
        for index in range(replica["replicas"]):
            tf_config = {
                "cluster": {"worker": hosts},
                "task": {"type": "worker", "index": index},
                "environment": "cloud",
            }
            worker_env = {**env(), **_container_env(container, runs)}
            worker_env["TF_CONFIG"] = json.dumps(tf_config)
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=tmp_path,
                    env=worker_env,
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
        return processes

    workers = start_workers()
    try:
        wait_for(lambda: checkpoint_steps(workdir), 180, "a first checkpoint", workers[0])
        workers[1].send_signal(signal.SIGTERM)  # one pod evicted
        outputs = [_communicate(p, 180) for p in workers]
    finally:
        for p in workers:
            _stop_tree(p)
    assert [p.returncode for p in workers] == [143, 143], outputs[0][-3000:] + outputs[1][-3000:]
    saved = checkpoint_steps(workdir)[-1]
    assert saved < SMALL_RUN["train.steps"]
    _check_files(workdir, saved)

    workers = start_workers()
    outputs = [_communicate(p, 300) for p in workers]
    assert [p.returncode for p in workers] == [0, 0], outputs[0][-4000:]
    result = summary(workdir)
    assert result["step"] == SMALL_RUN["train.steps"]
    assert result["resumed_from_step"] == saved
    _check_files(workdir, SMALL_RUN["train.steps"])
    # The non-chief's scratch copy is removed at the end.
    assert not list(workdir.glob(".worker_*"))
