"""Rendering the kustomize overlays and validating them strictly, offline.

Rendering uses the real kustomize (`kustomize build`, or the copy inside `kubectl
kustomize`). Core kinds validate with kubernetes-validate in strict mode; the Kubeflow
jobs validate with jsonschema against the openAPIV3Schema of the vendored CRDs, made
strict the way `kubectl apply --validate=strict` is: an object schema that declares
`properties` rejects any other field unless it has `x-kubernetes-preserve-unknown-fields`.
"""

import copy
import functools
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = {"mpijob": K8S / "overlays" / "mpijob", "tfjob": K8S / "overlays" / "tfjob"}
CRDS = Path(__file__).resolve().parent / "crds"
CRD_SCHEMAS = {
    ("kubeflow.org/v2beta1", "MPIJob"): (
        "kubeflow.org_mpijobs-mpi-operator-v0.8.2.yaml",
        "v2beta1",
    ),
    ("kubeflow.org/v1", "TFJob"): ("kubeflow.org_tfjobs-training-operator-v1.9.0.yaml", "v1"),
}
# ObjectMeta is validated by the API server itself, not by a CRD's schema.
METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise AssertionError(
        "rendering k8s/ needs `kustomize` or `kubectl` on PATH (kubectl kustomize embeds "
        "kustomize v5); install one of them"
    )


@functools.cache
def render(path: Path) -> tuple[dict, ...]:
    """The documents `kubectl apply -k path` would send, in order."""
    result = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kustomize failed on {path}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def pod_templates(doc: dict) -> dict[str, dict]:
    """{replica or kind name: pod template spec} of a Deployment, MPIJob or TFJob."""
    spec = doc["spec"]
    if doc["kind"] == "Deployment":
        return {doc["kind"]: spec["template"]["spec"]}
    replicas = spec.get("mpiReplicaSpecs") or spec.get("tfReplicaSpecs") or {}
    return {name: replica["template"]["spec"] for name, replica in replicas.items()}


def _strict(schema):
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict:
    filename, version = CRD_SCHEMAS[(api_version, kind)]
    crd = yaml.safe_load((CRDS / filename).read_text())
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served.get("served", True), f"{filename} does not serve {version}"
    return _strict(served["schema"]["openAPIV3Schema"])


def validate(doc: dict) -> None:
    """Raises (jsonschema.ValidationError or kubernetes_validate's errors) on a bad doc."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        import jsonschema

        unknown = set(doc.get("metadata", {})) - METADATA_FIELDS
        if unknown:
            raise jsonschema.ValidationError(f"unknown metadata fields {sorted(unknown)}")
        body = copy.deepcopy(doc)
        body["metadata"] = {}
        jsonschema.Draft7Validator(crd_schema(*key)).validate(body)
    else:
        import kubernetes_validate

        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
