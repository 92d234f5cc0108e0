"""A work dir holds one experiment: its config, checked at every start, and its segments.

`<workdir>/config.json` is the config the run trains with, written when a process
starts training. A later start in the same work dir (a resume, or a rerun of a finished
run) compares its config with it, before anything is written:

- fields that do not change the math (`RESUMABLE`: logging, evaluation and checkpoint
  cadence, `keep_checkpoints`, `profile_steps`, `steps_per_loop`, XLA, determinism, how
  gradients travel, `data.bad_files`) resume, and the change is recorded;
- `train.steps` (how far to train) may change: the steps already trained stay what they
  were. Where the learning-rate schedule depends on it (`optimizer.total_steps`, which
  the shipped configs tie to `train.steps`, with `optimizer.decay = "cosine"`), the
  schedule's change is refused like any other, naming both ways on;
- every other changed field stops the run with one `ConfigChangedError` listing each
  as `field: old -> new`, unless named in `--allow_config_change` (then recorded).

Every worker refuses together (the chief decides, the others follow its answer).

`<workdir>/segments.jsonl` records each process that trained: the step it started from,
the config changes accepted at that start, and, when it ends, the last step it trained,
the last step it saved and why it ended (finished, sigterm, or the error's name). A
process killed outright leaves no end line: the next segment's start says what it kept.
"""

from __future__ import annotations

import json
import os
import time

from focal_dist import atomic_files
from focal_dist.workdir import WorkDir

RESUMABLE = (
    "train.steps",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.profile_steps",
    "train.steps_per_loop",
    "train.jit_compile",
    "train.deterministic",
    "train.allreduce",
    "train.allreduce_bucket_mb",
    # Under "error" an image that cannot be decoded stops the run before it trains, so
    # switching either way never changes what a run that trained has seen.
    "data.bad_files",
)


class ConfigChangedError(ValueError):
    """The config differs from the work dir's in fields that change what is trained."""


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a.b": value} of a nested dict (lists kept whole)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changes(old: dict, new: dict) -> dict[str, tuple]:
    """{field: (old, new)} of every field that differs (a missing field reads as None)."""
    old, new = flatten(old), flatten(new)
    return {
        field: (old.get(field), new.get(field))
        for field in sorted(set(old) | set(new))
        if old.get(field) != new.get(field)
    }


def _refused(changed: dict, new: dict, allowed: set[str]) -> dict[str, str]:
    """{field: why} of the changes that are not accepted."""
    refused = {}
    decay = flatten(new).get("optimizer.decay")
    for field in changed:
        if field in RESUMABLE or field in allowed:
            continue
        if field == "optimizer.total_steps" and decay == "constant":
            continue  # A constant rate does not read it.
        why = ""
        if field == "optimizer.total_steps":
            why = (
                " (the cosine schedule decays to 0 at optimizer.total_steps, which follows "
                "train.steps unless set: keep the old value with "
                "--config.optimizer.total_steps=<old>, or accept the new schedule with "
                "--allow_config_change=optimizer.total_steps)"
            )
        refused[field] = why
    return refused


def check_config(backend, workdir: str, config, allowed=()) -> dict[str, tuple]:
    """The accepted changes against the work dir's config.json; raises ConfigChangedError.

    A work dir without a checkpoint or a summary has nothing to protect: any config
    starts it afresh. Runs on every worker (collective); writes nothing.
    """
    allowed = set(allowed)
    message, accepted = "", {}
    if backend.is_chief:
        recorded = _recorded_config(workdir)
        if recorded is not None:
            new = json.loads(config.to_json())
            changed = changes(recorded, new)
            refused = _refused(changed, new, allowed)
            accepted = {f: v for f, v in changed.items() if f not in refused}
            if refused:
                lines = [
                    f"  {f}: {changed[f][0]!r} -> {changed[f][1]!r}{why}"
                    for f, why in refused.items()
                ]
                message = (
                    f"{workdir} holds a run trained with another config; these fields change "
                    "what is trained:\n" + "\n".join(lines) + "\nUse a new --workdir, rerun "
                    "with the recorded config (" + WorkDir(workdir).config + "), "
                    "or accept the change with --allow_config_change=" + ",".join(refused)
                )
    backend.raise_together(
        ConfigChangedError(message) if message else None,
        ConfigChangedError("the chief refused this config for the work dir; see its log"),
    )
    return accepted


def _recorded_config(workdir: str) -> dict | None:
    layout = WorkDir(workdir)
    path = layout.config
    has_run = os.path.exists(layout.summary) or any(
        name.startswith("ckpt-") and name.endswith(".index")
        for name in _listdir(layout.checkpoints)
    )
    if not has_run or not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _listdir(path: str) -> list[str]:
    return os.listdir(path) if os.path.isdir(path) else []


class Segments:
    """<workdir>/segments.jsonl, written by the chief: one start and one end line each."""

    def __init__(self, workdir: str, enabled: bool):
        self.path = WorkDir(workdir).segments
        self.enabled = enabled

    def start(self, step: int, accepted: dict, backend) -> None:
        if self.enabled:
            atomic_files.append_line(
                self.path,
                json.dumps(
                    {
                        "start_step": step,
                        "started": time.time(),
                        "distribution": backend.name,
                        "num_replicas": backend.num_replicas_in_sync,
                        "config_changes": {f: list(v) for f, v in accepted.items()},
                    }
                ),
            )

    def end(self, trained_step: int, saved_step: int, ended: str) -> None:
        if self.enabled:
            atomic_files.append_line(
                self.path,
                json.dumps(
                    {
                        "end_step": trained_step,
                        "saved_step": saved_step,
                        "ended": ended,
                        "finished_at": time.time(),
                    }
                ),
            )

    def read(self) -> list[dict]:
        """Every segment, start and end merged; a killed one has `ended` "killed"."""
        if not os.path.exists(self.path):
            return []
        segments: list[dict] = []
        with open(self.path) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # A kill while appending.
                if "start_step" in record:
                    segments.append({**record, "ended": "killed"})
                elif segments:
                    segments[-1].update(record)
        return segments
