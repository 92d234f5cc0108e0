"""docs/scaling.md's cost model of one data-parallel step on N GPUs, printed as tables.

    .venv/bin/python bench/scaling_model.py [--overlap_fraction=0.3]

Per GPU batch b is fixed (weak scaling). One step on N GPUs:

    t_compute = b * c                       c: forward + backward seconds per example
    t_ring(N) = 2 (N - 1) / N * S / B  +  2 (N - 1) * a
                                            S: gradient bytes, B: link bytes/s,
                                            a: latency of one ring hop
    single:    t_step = t_compute + t_ring          (train.allreduce=single: one
                                            collective after the backward pass)
    overlap:   t_step = t_compute + max(0, t_ring - f * t_compute)
                                            gradient buckets all-reduced during the
                                            backward pass (train.allreduce=overlap, and
                                            Horovod's DistributedGradientTape): f is the
                                            share of compute that hides communication,
                                            --overlap_fraction as measured on the shaped
                                            link (bench/overlap.py: 0.26-0.38 on 2 CPU
                                            cores) and 2/3, the backward pass's share,
                                            as the upper bound
    efficiency E(N) = t_compute / t_step   (the update itself is the same on every N)

Inputs are the parameter bytes of the built-in models (bench/allreduce_bytes.py prints
them) and compute rates that are assumptions stated in docs/scaling.md, not
measurements of a GPU: none is available here.
"""

from __future__ import annotations

from absl import app, flags

flags.DEFINE_float(
    "overlap_fraction", 0.3, "f measured: (compute + all-reduce - overlapped step) / compute."
)

GPUS = (1, 2, 4, 8, 16, 32, 64)
BACKWARD_SHARE = 2 / 3
# name: (gradient MB, examples/s of one GPU (assumed), per-GPU batch)
MODELS = {
    "mlp (default)": (0.017, 5e6, 256),
    "cnn 64x64": (1.149, 2e4, 64),
    "efficientnet_b0 64x64": (16.035, 1.5e4, 64),
    "resnet50 64x64": (94.147, 1.6e4, 64),
    "resnet50 224x224": (94.147, 1.3e3, 64),
}
# name: (bytes/s of the ring's slowest link, seconds of latency per hop)
LINKS = {
    "NVLink (~100 GB/s)": (100e9, 5e-6),
    "100 Gb/s Ethernet": (12.5e9 * 0.8, 25e-6),
    "25 Gb/s Ethernet": (3.125e9 * 0.8, 25e-6),
}


def efficiency(megabytes, rate, batch, bandwidth, latency, n, fraction):
    """E(N) with a share `fraction` of the compute hiding communication (0: none)."""
    compute = batch / rate
    ring = 0.0 if n == 1 else 2 * (n - 1) / n * megabytes * 1e6 / bandwidth + 2 * (n - 1) * latency
    exposed = max(0.0, ring - fraction * compute)
    return compute / (compute + exposed)


def main(argv):
    del argv
    fractions = (0.0, flags.FLAGS.overlap_fraction, BACKWARD_SHARE)
    for link, (bandwidth, latency) in LINKS.items():
        print(
            f"\n{link}: scaling efficiency, single / overlap (f={fractions[1]:.2f}, measured) "
            "/ overlap (f=2/3, the bound)\n"
        )
        print("| model | " + " | ".join(f"N={n}" for n in GPUS) + " |")
        print("| --- |" + " --- |" * len(GPUS))
        for name, (megabytes, rate, batch) in MODELS.items():
            cells = [
                " / ".join(
                    f"{efficiency(megabytes, rate, batch, bandwidth, latency, n, f):.0%}"
                    for f in fractions
                )
                for n in GPUS
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
