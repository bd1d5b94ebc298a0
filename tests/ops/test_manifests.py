"""The Kubernetes manifests and the compose file: schema-valid, consistent, loadable configs.

Validation is offline, with the schemas kubernetes-validate bundles, for KUBERNETES_VERSION.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ecs.config import OpenEndpoint, load_settings
from statusbridge.config import load_config

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
# The oldest release the manifests target: native sidecars (restartPolicy on an init
# container) are on by default from 1.29; kubernetes-validate >= 1.31 ships this schema.
KUBERNETES_VERSION = "1.31.0"
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")

Doc = dict[str, Any]


def _documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _all() -> list[Doc]:
    return [doc for path in MANIFESTS for doc in _documents(path)]


def _find(kind: str, name: str) -> Doc:
    matches = [d for d in _all() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def _pod(name: str) -> Doc:
    pod: Doc = _find("Deployment", name)["spec"]["template"]["spec"]
    return pod


def _container(pod: Doc, name: str) -> Doc:
    everything = pod.get("initContainers", []) + pod["containers"]
    (container,) = [c for c in everything if c["name"] == name]
    return container


def _env(container: Doc) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_for_the_pinned_kubernetes(path: Path) -> None:
    """Every manifest validates strictly (no unknown field) against the pinned schemas."""
    documents = _documents(path)
    assert documents
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {document['kind']}/{document['metadata']['name']}: {exc}")


def test_validation_rejects_a_broken_manifest() -> None:
    """The validator is live: a Deployment with a wrongly typed field is refused."""
    broken = _find("Deployment", "statusbridge")
    broken = {**broken, "spec": {**broken["spec"], "replicas": "one"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_leaves_out_only_the_examples_and_the_maintenance_pod() -> None:
    """`kubectl apply -k` applies all manifests but the example Secrets and the maintenance pod."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    expected = {p.name for p in MANIFESTS} - {
        "secrets.example.yaml",
        "statusbridge-maintenance.yaml",
    }
    assert set(kustomization["resources"]) == expected
    assert all(d["kind"] == "Secret" for d in _documents(KUBERNETES / "secrets.example.yaml"))


def test_every_container_has_requests_and_limits() -> None:
    """Each container of each Deployment and Pod declares CPU and memory requests and limits."""
    for document in _all():
        if document["kind"] not in ("Deployment", "Pod"):
            continue
        spec = document["spec"]
        pod = spec["template"]["spec"] if document["kind"] == "Deployment" else spec
        for container in pod.get("initContainers", []) + pod["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), container["name"]


def test_ecs_runs_next_to_a_privileged_dind_sidecar_on_a_shared_socket() -> None:
    """ECS reaches its pod's dind engine through the socket dind makes on a shared emptyDir."""
    pod = _pod("ecs")
    dind = _container(pod, "dind")
    ecs = _container(pod, "ecs")
    assert dind["image"].startswith("docker:")
    assert dind["image"].endswith("-dind")
    assert dind["securityContext"]["privileged"] is True
    assert dind["restartPolicy"] == "Always", "dind must be a native sidecar, stopped after ECS"
    hosts = [a.split("=", 1)[1] for a in dind["args"] if a.startswith("--host=")]
    assert hosts == [_env(ecs)["ECS_DOCKER_HOST"]]
    socket_dir = hosts[0].removeprefix("unix://").rsplit("/", 1)[0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in (dind, ecs):
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts[socket_dir]]
    group = next(a for a in dind["args"] if a.startswith("--group="))
    assert group == f"--group={ecs['securityContext']['runAsGroup']}"


def test_ecs_container_is_locked_down() -> None:
    """Only dind is privileged: ECS and the forwarder run non-root with no capabilities."""
    pod = _pod("ecs")
    for name in ("ecs", "metrics-forwarder"):
        context = _container(pod, name)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["readOnlyRootFilesystem"] is True


def test_ecs_spreads_across_zones_with_a_disruption_budget() -> None:
    """ECS pods spread evenly over zones, and voluntary disruptions take one pod at a time."""
    deployment = _find("Deployment", "ecs")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    zone = [
        c
        for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        if c["topologyKey"] == "topology.kubernetes.io/zone"
    ]
    assert zone
    assert zone[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert zone[0]["maxSkew"] == 1
    assert zone[0]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["replicas"] >= 3
    budget = _find("PodDisruptionBudget", "ecs")["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, "a rollout must never lower capacity"


def test_ecs_probes_readiness_quick_and_liveness_comprehensive() -> None:
    """Readiness asks quick health; liveness asks comprehensive health (the engine)."""
    ecs = _container(_pod("ecs"), "ecs")
    assert ecs["readinessProbe"]["httpGet"]["path"] == "/v1.1/_health?quick=true"
    assert ecs["livenessProbe"]["httpGet"]["path"] == "/v1.1/_health?quick=false"
    assert "readinessProbe" not in _container(_pod("ecs"), "metrics-forwarder")


def _ecs_settings(tmp_path: Path) -> Any:
    config = _find("ConfigMap", "ecs-config")["data"]["ecs.toml"]
    path = tmp_path / "ecs.toml"
    path.write_text(config, encoding="utf-8")
    return load_settings(path)


def test_ecs_config_map_is_valid_and_opens_metrics_only_inside(tmp_path: Path) -> None:
    """ECS accepts the ConfigMap; /metrics is open to the forwarder but the Ingress skips it."""
    settings = _ecs_settings(tmp_path)
    assert OpenEndpoint.METRICS in settings.open_endpoints
    ingress = _find("Ingress", "ecs")["spec"]
    paths = [p["path"] for rule in ingress["rules"] for p in rule["http"]["paths"]]
    assert "/v1.1" in paths
    assert not any(p.startswith("/metrics") or p == "/" for p in paths)


def test_termination_grace_outlasts_the_drain(tmp_path: Path) -> None:
    """Kubernetes waits longer than preStop plus ECS's shutdown_grace_s before killing a pod."""
    settings = _ecs_settings(tmp_path)
    pod = _pod("ecs")
    pre_stop = _container(pod, "ecs")["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_s + int(pre_stop[1])
    max_task = settings.max_timeout_s
    annotations = _find("Ingress", "ecs")["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > max_task


def test_ecs_binds_all_interfaces_only_with_the_api_key_secret() -> None:
    """ECS listens on 0.0.0.0 with its credentials file inside the mounted API-key Secret."""
    pod = _pod("ecs")
    ecs = _container(pod, "ecs")
    env = _env(ecs)
    assert env["ECS_HOST"] == "0.0.0.0"
    mounts = {m["name"]: m["mountPath"] for m in ecs["volumeMounts"]}
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    (volume,) = [name for name in secret_volumes if name in mounts]
    assert env["ECS_CREDENTIALS_FILE"].startswith(mounts[volume] + "/")
    assert secret_volumes[volume] == "ecs-api-keys"
    assert all("subPath" not in m for m in ecs["volumeMounts"]), "subPath mounts never update"


def test_service_and_ingress_reach_the_ecs_pods_over_tls() -> None:
    """The Service selects the ECS pods by port name, and the Ingress uses TLS for its host."""
    labels = _find("Deployment", "ecs")["spec"]["template"]["metadata"]["labels"]
    service = _find("Service", "ecs")["spec"]
    assert service["selector"].items() <= labels.items()
    port_names = {p["name"] for p in _container(_pod("ecs"), "ecs")["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= port_names
    ingress = _find("Ingress", "ecs")["spec"]
    tls_hosts = {host for tls in ingress["tls"] for host in tls["hosts"]}
    for rule in ingress["rules"]:
        assert rule["host"] in tls_hosts
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "ecs"


def _statusbridge_env(container: Doc) -> dict[str, str]:
    """The container's variables, secrets replaced by placeholders and $(VAR) expanded."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif "secretKeyRef" in item["valueFrom"]:
            value = "placeholder-token"
        else:
            value = "ecs-7d4b9c-x2x9z"
        env[item["name"]] = value
    return env


def test_metrics_forwarder_environment_is_a_valid_statusbridge_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The forwarder sidecar's variables alone configure statusbridge to forward this pod's ECS."""
    forwarder = _container(_pod("ecs"), "metrics-forwarder")
    for name, value in _statusbridge_env(forwarder).items():
        monkeypatch.setenv(name, value)
    config = load_config(None)
    (target,) = config.ecs_targets
    assert target.url == "http://127.0.0.1:8448/metrics"
    assert target.name == "ecs-7d4b9c-x2x9z"
    assert config.signalfx.token is not None
    assert not config.checks


def test_statusbridge_is_one_replica_with_persistent_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """statusbridge runs alone (Recreate), keeps SQLite on the PVC, reads tokens from a Secret."""
    deployment = _find("Deployment", "statusbridge")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    container = _container(pod, "statusbridge")
    for name, value in _statusbridge_env(container).items():
        assert name.endswith("__TOKEN")
        monkeypatch.setenv(name, value)
    config_file = tmp_path / "statusbridge.toml"
    config_file.write_text(
        _find("ConfigMap", "statusbridge-config")["data"]["statusbridge.toml"], encoding="utf-8"
    )
    assert container["args"][-1] == "/etc/statusbridge/statusbridge.toml"
    config = load_config(config_file)
    assert config.checks
    assert config.pingdom is not None
    assert config.cachet is not None
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    state_volume = volumes[mounts[str(config.state_path.parent)]]
    claim = state_volume["persistentVolumeClaim"]["claimName"]
    assert _find("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert config.http.host == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_example_secrets_hold_every_key_the_manifests_read() -> None:
    """secrets.example.yaml shows every Secret name and key a Deployment refers to."""
    examples = {
        doc["metadata"]["name"]: set(doc["stringData"])
        for doc in _documents(KUBERNETES / "secrets.example.yaml")
    }
    wanted: set[tuple[str, str]] = set()
    for deployment in (d for d in _all() if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    wanted.add((ref["name"], ref["key"]))
        for volume in pod["volumes"]:
            if "secret" in volume:
                wanted.add((volume["secret"]["secretName"], "htpasswd"))
    for name, key in wanted:
        assert key in examples.get(name, set()), f"secret {name} key {key} has no example"


def test_images_agree() -> None:
    """Every ECS and statusbridge container runs the project image at the kustomization's tag."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = kustomization["images"]
    for name in ("ecs", "statusbridge"):
        for container in _pod(name)["containers"]:
            assert container["image"] == f"{image['name']}:{image['newTag']}"


@pytest.fixture(scope="module")
def compose() -> Doc:
    """The parsed docker-compose file."""
    document: Doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def test_compose_runs_both_services_from_one_image(compose: Doc) -> None:
    """The compose file runs ECS and statusbridge from one image, with their configs present."""
    services = compose["services"]
    assert set(services) == {"ecs", "statusbridge"}
    assert services["ecs"]["image"] == services["statusbridge"]["image"]
    assert services["ecs"]["command"][:2] == ["ecs", "serve"]
    assert services["statusbridge"]["command"][:2] == ["statusbridge", "run"]
    for service in services.values():
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (COMPOSE.parent / source).is_file(), source


def test_compose_ecs_binds_all_interfaces_with_keys_and_drains(compose: Doc) -> None:
    """On one host ECS binds 0.0.0.0 with a key file and may take over shutdown_grace_s to stop."""
    ecs = compose["services"]["ecs"]
    assert ecs["environment"]["ECS_HOST"] == "0.0.0.0"
    assert ecs["environment"]["ECS_CREDENTIALS_FILE"] == "/run/secrets/ecs_api_keys"
    assert ecs["secrets"] == ["ecs_api_keys"]
    settings = load_settings(COMPOSE.parent / "compose" / "ecs.toml")
    assert int(ecs["stop_grace_period"].removesuffix("s")) > settings.shutdown_grace_s


def test_compose_statusbridge_config_scrapes_the_ecs_service(
    compose: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """statusbridge's compose config is valid and forwards the ecs service's /metrics."""
    for name in ("PINGDOM", "CACHET", "SIGNALFX"):
        monkeypatch.setenv(f"STATUSBRIDGE_{name}__TOKEN", "placeholder-token")
    config = load_config(COMPOSE.parent / "compose" / "statusbridge.toml")
    port = compose["services"]["ecs"]["ports"][0].split(":")[-1]
    assert [t.url for t in config.ecs_targets] == [f"http://ecs:{port}/metrics"]
    environment = compose["services"]["statusbridge"]["environment"]
    assert environment["HEALTHCHECK_URL"] == f"http://127.0.0.1:{config.http.port}/health"


CLUSTER_COMPOSE = ROOT / "deploy" / "docker-compose.cluster.yml"


@pytest.mark.tools  # HAProxy checks its own config
def test_cluster_compose_runs_two_nodes_on_one_redis_behind_haproxy(tmp_path: Path) -> None:
    """The cluster compose file: Redis with an append-only file, two ECS nodes in cluster
    mode with their own instance ids, HAProxy whose config is valid and names both."""
    document = yaml.safe_load(CLUSTER_COMPOSE.read_text(encoding="utf-8"))
    services = document["services"]
    assert set(services) == {"redis", "ecs-1", "ecs-2", "balancer"}
    assert "--appendonly" in services["redis"]["command"]
    nodes = [services["ecs-1"], services["ecs-2"]]
    assert {n["environment"]["ECS_INSTANCE_ID"] for n in nodes} == {"ecs-1", "ecs-2"}
    for node in nodes:
        assert node["environment"]["ECS_CLUSTER__REDIS_URL"] == "redis://redis:6379/0"
        assert node["command"][:2] == ["ecs", "serve"]
    config = (CLUSTER_COMPOSE.parent / "compose" / "haproxy.cfg").read_text()
    assert "server ecs-1 ecs-1:8448" in config
    assert "server ecs-2 ecs-2:8448" in config
    # HAProxy itself checks the file; host names of the compose network do not resolve
    # here, so they are mapped to loopback for the check only.
    local = tmp_path / "haproxy.cfg"
    local.write_text(
        config.replace("ecs-1:8448", "127.0.0.1:1").replace("ecs-2:8448", "127.0.0.1:2")
    )
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    result = subprocess.run(
        [haproxy, "-c", "-f", str(local)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ecs_pods_share_the_cluster_redis() -> None:
    """Every ECS pod runs in cluster mode on the manifests' Redis, its password a Secret."""
    env = _env(_container(_pod("ecs"), "ecs"))
    assert env["ECS_CLUSTER__REDIS_URL"] == "redis://redis.ecs.svc:6379/0"
    assert env["ECS_CLUSTER__REDIS_PASSWORD"]["secretKeyRef"]["name"] == "ecs-redis"
    redis = _container(_pod("redis"), "redis")
    assert "--appendonly" in redis["args"]
