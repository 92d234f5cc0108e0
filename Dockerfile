# The image the Kubernetes jobs run: the tested stack installed by `make setup` (the same
# target and constraints.txt as a developer's venv), OpenMPI and an ssh server for the
# MPI operator. Build: `make image` (docs/operations.md, "The image").
#
#   CPU (default):  --build-arg BASE=debian:bookworm
#   GPU:            --build-arg BASE=nvidia/cuda:12.5.1-devel-ubuntu22.04
#                   --build-arg TF_PACKAGE='tensorflow[and-cuda]'
# On the GPU image TensorFlow computes on the GPU and Horovod's collectives run on the
# host (Gloo/MPI): Horovod 0.28.1 with NCCL does not compile against TF >= 2.19, and
# `HOROVOD_GPU_OPERATIONS=NCCL` is refused by launch/build_horovod.sh with the reason
# (docs/operations.md, "Horovod on GPUs").
# The `smoke` stage trains a few steps with `horovodrun -np 2` while building (used by
# `make test-slow`, where `podman run` is not available).
ARG BASE=debian:bookworm

FROM ${BASE} AS runtime
ARG TF_PACKAGE=tensorflow-cpu
ARG HOROVOD_GPU_OPERATIONS=
# Behind a TLS-intercepting proxy: mount its CA bundle for the build and name it here,
# e.g. `-v /etc/ssl/certs/ca-certificates.crt:/etc/build-ca.crt:ro --build-arg PIP_CERT=/etc/build-ca.crt`.
ARG PIP_CERT=
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

SHELL ["/bin/bash", "-eo", "pipefail", "-c"]

# g++ and the MPI headers build Horovod; openssh-server is what the MPI operator's
# launcher reaches the workers through; procps gives the worker entry point pgrep/pkill.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates g++ make python3 python3-dev python3-venv \
        openmpi-bin libopenmpi-dev openssh-client openssh-server procps \
    && rm -rf /var/lib/apt/lists/*

# sshd as the MPI operator expects: keys come from the mounted secret (whose file modes
# StrictModes would reject), hosts are pods with new addresses after every restart.
RUN mkdir -p /run/sshd \
    && printf 'StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n' \
        > /etc/ssh/sshd_config.d/focal-dist-mpi.conf \
    && printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' \
        > /etc/ssh/ssh_config.d/focal-dist-mpi.conf \
    && useradd --create-home --uid 1000 --user-group focal

WORKDIR /app
# Only what `make setup` reads, so that code changes do not rebuild TensorFlow and Horovod
# (setup.cfg's long_description names README.md; its text does not matter here).
COPY Makefile constraints.txt setup.cfg pyproject.toml ./
COPY launch/check_setup.py launch/build_horovod.sh launch/
COPY focal_dist/__init__.py focal_dist/
RUN if [ -z "${PIP_CERT}" ]; then unset PIP_CERT; fi \
    && touch README.md \
    && make setup TF_PACKAGE="${TF_PACKAGE}" HOROVOD_GPU_OPERATIONS="${HOROVOD_GPU_OPERATIONS}" \
    && rm -rf /root/.cache

COPY focal_dist/ focal_dist/
COPY configs/ configs/
COPY launch/ launch/
# Non-root pods (TFJob workers, TensorBoard) run as uid 1000 and write only to /runs.
RUN mkdir -p /runs && chown focal:focal /runs
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONPATH=/app
# No ENTRYPOINT: every manifest names its command. Without one, this is what the MPI
# operator would start in a worker (sshd in the foreground, logging to stderr).
CMD ["/usr/sbin/sshd", "-De"]

FROM runtime AS smoke
# Two Horovod processes over Gloo and over MPI, a few steps each, then the files the
# Kubernetes jobs rely on (checkpoint, TensorBoard events, summary.json).
RUN for transport in gloo mpi; do \
        launch/horovod.sh -np 2 --"${transport}" -- --config=configs/default.py \
            --workdir="/tmp/smoke-${transport}" --config.train.steps=6 \
            --config.train.steps_per_loop=3 --config.data.synthetic.num_train=2048 \
            --config.data.synthetic.num_eval=1024 --config.train.eval_every=0; \
        test -s "/tmp/smoke-${transport}/summary.json"; \
        ls "/tmp/smoke-${transport}/checkpoints/"*.index >/dev/null; \
        ls "/tmp/smoke-${transport}/tensorboard/"events.out.tfevents.* >/dev/null; \
    done \
    && rm -rf /tmp/smoke-*
