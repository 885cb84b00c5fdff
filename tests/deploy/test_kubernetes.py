"""deploy/k8s, checked offline: every manifest against the Kubernetes schemas, and against the
Dockerfile, the Compose file and ``Settings`` so that none of them drifts from the others.

No cluster is needed: ``kubernetes-validate`` bundles the API's JSON schemas, and ``--strict``
(``strict=True``) refuses any field the API does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import kubernetes_validate
import pytest
import yaml
from litestar.handlers import HTTPRouteHandler

from serving.inference.routes import PredictionController
from serving.settings import ENV_PREFIX, Settings
from tests.support import ROOT

K8S: Final = ROOT / "deploy" / "k8s"
DEV: Final = K8S / "overlays" / "dev"
# The oldest release the manifests promise to work on (preStop `sleep` is on by default since
# 1.30), and the newest whose schemas the package bundles.
KUBERNETES_VERSIONS: Final = ("1.30.0", "1.37.0")
Manifest = dict[str, Any]


def _documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _resources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")


MANIFESTS: Final = [*_resources(K8S), *_resources(DEV)]


def _all(kind: str) -> list[Manifest]:
    return [doc for path in MANIFESTS for doc in _documents(path) if doc["kind"] == kind]


def _one(kind: str, name: str) -> Manifest:
    [found] = [doc for doc in _all(kind) if doc["metadata"]["name"] == name]
    return found


def _pod_specs() -> Iterator[tuple[str, Manifest]]:
    for doc in [*_all("Deployment"), *_all("StatefulSet"), *_all("Job")]:
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
    for doc in _all("CronJob"):
        yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _runtime_env() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage (the slim image)."""
    runtime = _dockerfile().split("AS runtime", 1)[1]
    block = re.search(r"^ENV (.*?)(?=^\S)", runtime, re.M | re.S)
    assert block is not None
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1)))


def _api() -> Manifest:
    return _one("Deployment", "drugclf-api")


def _api_container() -> Manifest:
    containers: list[Manifest] = _api()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _api_env() -> dict[str, str]:
    """What the API container reads: the ConfigMap and the Secret it takes, then its own env."""
    env: dict[str, str] = {}
    for source in _api_container()["envFrom"]:
        if "configMapRef" in source:
            env.update(_one("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(_one("Secret", source["secretRef"]["name"])["stringData"])
    env.update({item["name"]: item["value"] for item in _api_container().get("env", [])})
    return env


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    for document in _documents(path):
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_refuses_an_unknown_field() -> None:
    deployment = _api()
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("folder", [K8S, DEV], ids=["base", "dev"])
def test_kustomization_lists_every_manifest_of_its_folder(folder: Path) -> None:
    kustomization = _documents(folder / "kustomization.yaml")[0]
    listed = [entry for entry in kustomization["resources"] if entry.endswith(".yaml")]
    assert sorted(listed) == [p.name for p in _resources(folder)]


def test_the_dev_overlay_builds_on_the_base() -> None:
    kustomization = _documents(DEV / "kustomization.yaml")[0]
    assert (DEV / kustomization["resources"][0]).resolve() == K8S


def test_every_container_runs_locked_down_and_bounded() -> None:
    for name, spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in _containers(spec):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where


def test_images_are_the_ones_the_project_builds() -> None:
    compose = _documents(ROOT / "docker-compose.yml")[0]["services"]
    docker_mk = (ROOT / "mk" / "docker.mk").read_text(encoding="utf-8")
    made = re.search(r"^DOCKER_IMAGE \?= (\S+)$", docker_mk, re.M)
    assert made is not None
    assert compose["api"]["image"] == made.group(1)
    for container in _containers(_api()["spec"]["template"]["spec"]):
        assert container["image"] == compose["api"]["image"]
    for name, spec in _pod_specs():
        if name == "drugclf-train":
            assert spec["containers"][0]["image"] == compose["trainer"]["image"]


def test_uid_matches_the_image_user() -> None:
    uids = set(re.findall(r"^ARG APP_UID=(\d+)$", _dockerfile(), re.M))
    assert len(uids) == 1
    for name, spec in _pod_specs():
        if name.startswith("drugclf-") and name != "drugclf-postgres":
            assert str(spec["securityContext"]["runAsUser"]) in uids, name


def test_port_is_the_one_the_image_exposes_and_the_server_binds() -> None:
    exposed = re.search(r"^EXPOSE (\d+)$", _dockerfile(), re.M)
    assert exposed is not None
    [port] = _api_container()["ports"]
    assert str(port["containerPort"]) == exposed.group(1) == _api_env()["DRUGCLF_PORT"]
    assert _api_env()["DRUGCLF_HOST"] == "0.0.0.0"
    service = _one("Service", "drugclf-api")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_probes_use_the_servers_status_routes() -> None:
    routes = {
        path
        for handler in vars(PredictionController).values()
        if isinstance(handler, HTTPRouteHandler) and "GET" in handler.http_methods
        for path in handler.paths
    }
    container = _api_container()
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe")}
    probes["livenessProbe"] = container["livenessProbe"]["httpGet"]
    assert {probe["path"] for probe in probes.values()} <= routes
    assert probes["readinessProbe"]["path"] == "/ready"
    assert probes["livenessProbe"]["path"] == "/health"
    # The image's own HEALTHCHECK asks the same question as the readiness probe.
    assert "/ready'" in _dockerfile().split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert {probe["port"] for probe in probes.values()} == {container["ports"][0]["name"]}


def test_every_setting_is_one_the_server_reads_and_is_valid() -> None:
    env = _api_env()
    fields = {ENV_PREFIX + name.upper() for name in Settings.__struct_fields__}
    assert set(env) <= fields, set(env) - fields
    settings = Settings.from_env(env)  # a bad value raises SettingsError naming it
    assert settings.prediction_log_location().startswith("postgresql://")


def test_paths_are_the_images_and_mounted_writable_where_the_server_writes() -> None:
    env, image_env = _api_env(), _runtime_env()
    for name in ("DRUGCLF_ARTIFACTS_DIR", "DRUGCLF_DATA_DIR"):
        assert env[name] == image_env[name], name
    mounts = {m["mountPath"]: m for m in _api_container()["volumeMounts"]}
    # Read-only root filesystem: the registry (promote writes `current`), the data folder (the
    # log's spool) and /tmp (metrics of several workers) are volumes, writable.
    for path in (env["DRUGCLF_ARTIFACTS_DIR"], env["DRUGCLF_DATA_DIR"], "/tmp"):
        assert path in mounts, path
        assert not mounts[path].get("readOnly", False), path
    volumes = {v["name"]: v for v in _api()["spec"]["template"]["spec"]["volumes"]}
    registry = volumes[mounts[env["DRUGCLF_ARTIFACTS_DIR"]]["name"]]
    claim = _one("PersistentVolumeClaim", registry["persistentVolumeClaim"]["claimName"])
    assert "ReadWriteMany" in claim["spec"]["accessModes"]


def test_the_training_job_publishes_into_the_registry_the_api_serves() -> None:
    api_claim = _one("PersistentVolumeClaim", "drugclf-registry")["metadata"]["name"]
    job = _one("Job", "drugclf-train")["spec"]["template"]["spec"]
    cron = _one("CronJob", "drugclf-train")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job == cron
    [train] = job["containers"]
    command = train["command"]
    artifacts = command[command.index("--artifacts-dir") + 1]
    data = command[command.index("--data") + 1]
    assert artifacts == _api_env()["DRUGCLF_ARTIFACTS_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in train["volumeMounts"]}
    volumes = {v["name"]: v for v in job["volumes"]}
    assert volumes[mounts[artifacts]]["persistentVolumeClaim"]["claimName"] == api_claim
    # The trainer stage copies data/ into its WORKDIR /app.
    assert train["workingDir"] == "/app"
    assert (ROOT / data).is_file()
    assert "COPY data/ data/" in _dockerfile().split("AS trainer", 1)[1].split("AS serve-env")[0]


def test_selectors_reach_the_api_pods() -> None:
    labels = _api()["spec"]["template"]["metadata"]["labels"]
    selected = [
        _api()["spec"]["selector"]["matchLabels"],
        _one("Service", "drugclf-api")["spec"]["selector"],
        _one("PodDisruptionBudget", "drugclf-api")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selected:
        assert selector.items() <= labels.items()
    target = _one("HorizontalPodAutoscaler", "drugclf-api")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "drugclf-api")


def test_the_dev_database_matches_the_dsn_in_the_secret() -> None:
    dsn = _one("Secret", "drugclf-secrets")["stringData"]["DRUGCLF_PREDICTION_LOG_URL"]
    match = re.fullmatch(r"postgresql://(\w+):([^@]+)@([\w-]+):(\d+)/(\w+)", dsn)
    assert match is not None
    user, password, host, port, database = match.groups()
    credentials = _one("Secret", "drugclf-postgres")["stringData"]
    assert (credentials["POSTGRES_USER"], credentials["POSTGRES_PASSWORD"]) == (user, password)
    assert credentials["POSTGRES_DB"] == database
    service = _one("Service", "drugclf-postgres")
    assert service["metadata"]["name"] == host
    assert str(service["spec"]["ports"][0]["port"]) == port
