"""The Kubernetes manifests are valid against Kubernetes' own schemas, and wired as documented."""

import os

import kubernetes_validate
import pytest
import yaml

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
MANIFESTS = ["serving/k8s.yaml", "serving/k8s-batching.yaml", "deploy/train-job.yaml"]
# Oldest release still in wide use that has every field used (Indexed Jobs: 1.24).
KUBERNETES = "1.28"


def resources(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return [r for r in yaml.safe_load_all(f) if r]


@pytest.mark.parametrize("path", MANIFESTS)
@pytest.mark.parametrize("version", [KUBERNETES, kubernetes_validate.latest_version()])
def test_manifest_validates_strictly_against_the_kubernetes_schema(path, version):
    # Strict: an unknown or misspelt field (e.g. `replica:`) fails, as `kubectl apply --validate=strict` would.
    for resource in resources(path):
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.caught.absolute_path)
            pytest.fail(f"{path}: {resource['kind']}/{resource['metadata']['name']}: {where}: {e.caught.message}")


def test_the_schema_check_catches_a_misspelt_field():
    deployment = next(r for r in resources("serving/k8s.yaml") if r["kind"] == "Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def by_kind(path):
    out = {}
    for r in resources(path):
        out.setdefault(r["kind"], {})[r["metadata"]["name"]] = r
    return out


def test_grpc_has_a_headless_service_over_the_serving_pods():
    k8s = by_kind("serving/k8s.yaml")
    pods = k8s["Deployment"]["lmk-serving"]["spec"]["template"]["metadata"]["labels"]
    headless = k8s["Service"]["lmk-serving-grpc"]["spec"]
    assert headless["clusterIP"] == "None" and headless["selector"] == pods
    assert {p["port"] for p in headless["ports"]} == {8500}
    args = k8s["Deployment"]["lmk-serving"]["spec"]["template"]["spec"]["containers"][0]["args"]
    # Connections age out, so clients resolve again and reach pods added since.
    assert any(a.startswith("--grpc_channel_arguments=grpc.max_connection_age_ms=") for a in args)
    assert "--enable_batching=true" not in args


def test_the_batching_deployment_batches_with_the_shipped_parameters():
    batch = by_kind("serving/k8s-batching.yaml")
    container = batch["Deployment"]["lmk-serving-batch"]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert "--enable_batching=true" in args and "--enable_model_warmup=false" in args
    assert "--batching_parameters_file=/config/batching_parameters.txt" in args
    assert {"name": "config", "mountPath": "/config", "readOnly": True} in container["volumeMounts"]
    assert batch["Service"]["lmk-serving-batch"]["spec"]["clusterIP"] == "None"
    with open(os.path.join(REPO, "serving", "k8s.yaml"), encoding="utf-8") as f:
        assert "--from-file=batching_parameters.txt" in f.read()  # the config map holds it


def test_compose_runs_the_batching_server_under_its_profile():
    with open(os.path.join(REPO, "serving", "docker-compose.yml"), encoding="utf-8") as f:
        services = yaml.safe_load(f)["services"]
    assert "profiles" not in services["tfserving"]
    assert "--enable_batching=true" not in services["tfserving"]["command"]
    batch = services["tfserving-batch"]
    assert batch["profiles"] == ["batching"]
    assert {"--enable_batching=true", "--batching_parameters_file=/config/batching_parameters.txt",
            "--enable_model_warmup=false"} <= set(batch["command"])
    assert "./batching_parameters.txt:/config/batching_parameters.txt:ro" in batch["volumes"]
