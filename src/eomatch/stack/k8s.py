"""Kubernetes manifests for ``deploy/k8s/`` (kustomize-ready), built as data.

They run what the Compose file runs: the same images and tags, ports, environment
names, settings file, nginx and browser configs. ``render.py`` renders those shared
parts once (Compose mode: the k8s Services carry the Compose service names, so the
proxy's upstreams resolve alike) and hands them in here, so the two cannot drift.
Secrets are only referenced by name (``secretKeyRef``); ``docs/operations.md`` gives
the ``kubectl create secret`` commands. Per-cluster choices (image registry, resources,
storage, autoscaling bounds) are overridden in a kustomize overlay, not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from eomatch.errors import ConfigError
from eomatch.settings import Settings

SECRET_NAME = "eomatch-secrets"
"""The one Secret of passwords and keys; its keys are the ``.env`` variable names."""
SITE_CONFIGMAP = "eomatch-site"
"""Per-cluster addresses (``EOMATCH_PUBLIC_URL``, ``EOMATCH_INTERNAL_URL``), made by the operator."""
TLS_SECRET = "eomatch-tls"
READ_USERS_SECRET = "eomatch-read-users"
"""Secret (key ``htpasswd``) of the read logins when ``stack.proxy.read_auth: basic``."""
SHARED_CLAIM = "eomatch-shared"
"""PersistentVolumeClaim of the shared drive (products, analysis results), mounted read-only."""
SHARED_MOUNT = "/npl-data"
"""Where the APIs see the shared drive: Compose's default ``NFS_MOUNT``."""
DB_PORT = 5432
DB_STORAGE = "20Gi"
EXTERNAL_MAX_REPLICAS = 4
"""The external API's autoscaler never goes above this (or ``external_replicas``, if more)."""
EXTERNAL_CPU_TARGET_PERCENT = 70
API_UID = 65534
"""``nobody``: the API image's ``USER``."""
POSTGRES_UID = 999
"""``postgres`` in the postgis/postgis image (owns ``PGDATA``)."""
PGDATA = "/var/lib/postgresql/data/pgdata"
"""A folder below the volume's root (which may hold ``lost+found``)."""

PROBE_PERIOD_S = 10
PROBE_TIMEOUT_S = 5
PROBE_FAILURES = 5
DB_PROBE_PERIOD_S = 5
DB_PROBE_FAILURES = 30

RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "api": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "browser": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
    "proxy": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
    "db": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "migrate": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
}
"""Requests and limits per kind of container (the HPA scales on the APIs' CPU request)."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class K8sInputs:
    """What the Compose render shares with the manifests (rendered once, in render.py)."""

    api_image: str
    browser_image: str
    proxy_image: str
    db_image: str
    api_port: int
    browser_port: int
    proxy_port: int
    internal_port: int
    tls_port: int
    assets_mount: str
    settings_yaml: str
    proxy_conf: str
    browser_conf: str
    browser_config_js: str
    proxy_scripts: Mapping[str, str]
    """Entry-point scripts of the nginx image (``40-eomatch-keys.sh`` ...) by file name."""
    users_dir: str = "/etc/nginx/eomatch/users"
    """Folder of the read logins file ``htpasswd`` (``read_auth: basic``), as in Compose."""
    cache_dir: str | None = None
    """The proxy's ``/external/`` read cache (``stack.proxy.external_cache_s``), an
    emptyDir; None = no cache."""
    cache_size_limit: str = "512Mi"
    """The emptyDir's bound: above nginx's ``max_size``, which its cache manager may
    overshoot briefly."""


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "eomatch", "app.kubernetes.io/component": component}


def _meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": _labels(component)}


def _secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}}


def _http_probe(path: str, port: int, period_s: int = PROBE_PERIOD_S) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": PROBE_TIMEOUT_S,
        "failureThreshold": PROBE_FAILURES,
    }


def _service(name: str, component: str, ports: list[tuple[str, int, int]], headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": _labels(component),
        "ports": [{"name": pname, "port": port, "targetPort": target} for pname, port, target in ports],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, component), "spec": spec}


def _deployment(name: str, pod: dict[str, Any], replicas: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": _labels(name)}, "template": {"metadata": {"labels": _labels(name)}, "spec": pod}}
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, name), "spec": spec}


def _config_map(name: str, component: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, component), "data": dict(data)}


def db_env(settings: Settings, role: str, password_key: str) -> list[dict[str, Any]]:
    """The libpq environment Compose gives the APIs and ``migrate``: database ``db``."""
    return [
        {"name": "PGHOST", "value": "db"},
        {"name": "PGPORT", "value": str(DB_PORT)},
        {"name": "PGDATABASE", "value": settings.stack.db.name},
        {"name": "PGUSER", "value": role},
        _secret_env("PGPASSWORD", password_key),
        {"name": "EOMATCH_CONFIG", "value": "/etc/eomatch/settings.yaml"},
    ]


def external_db_env(settings: Settings) -> list[dict[str, Any]]:
    """The external API's database, as Compose gives it: with ``stack.db.replicas``,
    every standby (Services named like Compose's) and then the primary, the first that
    answers as a standby; pooled connections renew so reads return to a standby that
    came back. The read-only role either way."""
    from eomatch.stack.replica import REREAD_IDLE_S, REREAD_QUERIES, compose_replica_services

    env = db_env(settings, settings.stack.db.read_user, "EOMATCH_READ_PASSWORD")
    if not settings.stack.db.replicas:
        return env
    hosts = [*compose_replica_services(settings), "db"]
    values = {"PGHOST": ",".join(hosts), "PGPORT": ",".join([str(DB_PORT)] * len(hosts))}
    env = [{**e, "value": values[e["name"]]} if e["name"] in values else e for e in env]
    at = next(i for i, e in enumerate(env) if e["name"] == "EOMATCH_CONFIG")
    env[at:at] = [
        {"name": "PGTARGETSESSIONATTRS", "value": "prefer-standby"},
        {"name": "DB_MIN_CONN_SIZE", "value": "0"},
        {"name": "DB_MAX_INACTIVE_CONN_LIFETIME", "value": str(REREAD_IDLE_S)},
        {"name": "DB_MAX_QUERIES", "value": str(REREAD_QUERIES)},
    ]
    return env


_API_SECURITY = {"runAsNonRoot": True, "runAsUser": API_UID, "runAsGroup": API_UID}
_NO_ESCALATION = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _api(settings: Settings, inp: K8sInputs, audience: str) -> dict[str, Any]:
    """api-internal or api-external: the Compose command, role and probes; the settings
    file from a ConfigMap and the shared drive read-only."""
    db = settings.stack.db
    role, key = (db.api_user, "EOMATCH_API_PASSWORD") if audience == "internal" else (db.read_user, "EOMATCH_READ_PASSWORD")
    name = f"api-{audience}"
    container = {
        "name": name,
        "image": inp.api_image,
        "command": [
            "uvicorn", "--factory", f"eomatch.server.app:{audience}_app", "--host", "0.0.0.0",
            "--port", str(inp.api_port), "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log",
        ],  # fmt: skip
        "ports": [{"name": "http", "containerPort": inp.api_port}],
        "env": db_env(settings, role, key) if audience == "internal" else external_db_env(settings),
        # ready when the database answers (503 otherwise); alive while the process does
        "readinessProbe": _http_probe("/_mgmt/health", inp.api_port),
        "livenessProbe": _http_probe("/_mgmt/ping", inp.api_port),
        "resources": RESOURCES["api"],
        "securityContext": _NO_ESCALATION,
        "volumeMounts": [
            {"name": "settings", "mountPath": "/etc/eomatch", "readOnly": True},
            {"name": "shared", "mountPath": SHARED_MOUNT, "readOnly": True},
        ],
    }
    pod = {
        "securityContext": _API_SECURITY,
        "containers": [container],
        "volumes": [
            {"name": "settings", "configMap": {"name": "eomatch-settings"}},
            {"name": "shared", "persistentVolumeClaim": {"claimName": SHARED_CLAIM, "readOnly": True}},
        ],
    }
    # The internal API has one replica (writes); the external one is scaled by its HPA,
    # so the Deployment leaves replicas to it (an apply would otherwise reset them).
    return _deployment(name, pod, 1 if audience == "internal" else None)


def _external_hpa(settings: Settings) -> dict[str, Any]:
    low = settings.stack.api.external_replicas
    if low < 1:
        raise ConfigError(f"stack.api.external_replicas must be at least 1 (got {low})")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta("api-external", "api-external"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-external"},
            "minReplicas": low,
            "maxReplicas": max(low, EXTERNAL_MAX_REPLICAS),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": EXTERNAL_CPU_TARGET_PERCENT}}}],
        },  # fmt: skip
    }


def _migrate(settings: Settings, inp: K8sInputs) -> dict[str, Any]:
    """Compose's one-shot ``migrate``: pgSTAC schema and roles (idempotent); retried
    until the database answers."""
    db = settings.stack.db
    env = db_env(settings, db.admin_user, "EOMATCH_ADMIN_PASSWORD")
    secrets = ["EOMATCH_API_PASSWORD", "EOMATCH_INGEST_PASSWORD", "EOMATCH_READ_PASSWORD", "EOMATCH_API_KEYS"]
    if db.replicas:  # db-setup makes the replication role and a slot per standby
        secrets.append("EOMATCH_REPLICATION_PASSWORD")
    env[-1:-1] = [_secret_env(name, name) for name in secrets]
    container = {
        "name": "migrate",
        "image": inp.api_image,
        "command": ["eomatch-stack", "db-setup"],
        "env": env,
        "resources": RESOURCES["migrate"],
        "securityContext": _NO_ESCALATION,
        "volumeMounts": [{"name": "settings", "mountPath": "/etc/eomatch", "readOnly": True}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("migrate", "migrate"),
        "spec": {
            "backoffLimit": 10,
            "template": {
                "metadata": {"labels": _labels("migrate")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": _API_SECURITY,
                    "containers": [container],
                    "volumes": [{"name": "settings", "configMap": {"name": "eomatch-settings"}}],
                },
            },
        },
    }


def _browser(inp: K8sInputs) -> list[dict[str, Any]]:
    container = {
        "name": "browser",
        "image": inp.browser_image,
        "ports": [{"name": "http", "containerPort": inp.browser_port}],
        "readinessProbe": _http_probe("/config.js", inp.browser_port),
        "livenessProbe": _http_probe("/config.js", inp.browser_port),
        "resources": RESOURCES["browser"],
        "volumeMounts": [
            {"name": "conf", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf", "readOnly": True},
            {"name": "conf", "mountPath": "/usr/share/nginx/html/config.js", "subPath": "config.js", "readOnly": True},
        ],
    }
    pod = {"containers": [container], "volumes": [{"name": "conf", "configMap": {"name": "browser-conf"}}]}
    return [
        _config_map("browser-conf", "browser", {"nginx.conf": inp.browser_conf, "config.js": inp.browser_config_js}),
        _deployment("browser", pod, 1),
        _service("browser", "browser", [("http", inp.browser_port, inp.browser_port)]),
    ]


def _assets_subpath(settings: Settings) -> str | None:
    """``stack.proxy.assets_root`` as a folder of the shared drive (the proxy mounts that
    claim read-only), or None when no ``/assets/`` are served."""
    root = settings.stack.proxy.assets_root
    if root is None:
        return None
    text = str(root).rstrip("/")
    if text != SHARED_MOUNT and not text.startswith(SHARED_MOUNT + "/"):
        raise ConfigError(
            f"stack.proxy.assets_root '{root}' is not on the shared drive ({SHARED_MOUNT}), "
            "the only folder the Kubernetes proxy can serve /assets/ from"
        )
    return text[len(SHARED_MOUNT) + 1 :]


def _proxy(settings: Settings, inp: K8sInputs) -> list[dict[str, Any]]:
    """nginx with the Compose config and entry-point scripts: keys and addresses from
    the Secret and the site ConfigMap at start, never written into these files."""
    px = settings.stack.proxy
    tls = px.tls_cert is not None and px.tls_key is not None
    ports = [("http", px.port, inp.proxy_port)] + ([("https", px.tls_port, inp.tls_port)] if tls else [])
    container_ports = [{"name": n, "containerPort": t} for n, _, t in ports] + [{"name": "internal", "containerPort": inp.internal_port}]
    mounts: list[dict[str, Any]] = [
        {"name": "conf", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf", "readOnly": True},
        *({"name": "conf", "mountPath": f"/docker-entrypoint.d/{script}", "subPath": script, "readOnly": True} for script in inp.proxy_scripts),
        # the scripts write keys.conf and the URL includes here at start
        {"name": "generated", "mountPath": "/etc/nginx/eomatch"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "conf", "configMap": {"name": "proxy-conf", "defaultMode": 0o555}},
        {"name": "generated", "emptyDir": {}},
    ]
    if tls:
        mounts.append({"name": "tls", "mountPath": "/etc/nginx/eomatch/tls", "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": TLS_SECRET, "items": [
            {"key": "tls.crt", "path": "cert.pem"}, {"key": "tls.key", "path": "key.pem"}]}})  # fmt: skip
    if px.read_auth == "basic":  # the read logins, as Compose mounts them
        mounts.append({"name": "read-users", "mountPath": inp.users_dir, "readOnly": True})
        volumes.append({"name": "read-users", "secret": {"secretName": READ_USERS_SECRET, "items": [
            {"key": "htpasswd", "path": "htpasswd"}]}})  # fmt: skip
    if inp.cache_dir:  # disposable: each proxy pod keeps its own
        mounts.append({"name": "cache", "mountPath": inp.cache_dir})
        volumes.append({"name": "cache", "emptyDir": {"sizeLimit": inp.cache_size_limit}})
    subpath = _assets_subpath(settings)
    if subpath is not None:
        mount = {"name": "shared", "mountPath": inp.assets_mount, "readOnly": True}
        mounts.append({**mount, "subPath": subpath} if subpath else mount)
        volumes.append({"name": "shared", "persistentVolumeClaim": {"claimName": SHARED_CLAIM, "readOnly": True}})
    container = {
        "name": "proxy",
        "image": inp.proxy_image,
        "ports": container_ports,
        "env": [
            _secret_env("EOMATCH_API_KEYS", "EOMATCH_API_KEYS"),
            *({"name": n, "valueFrom": {"configMapKeyRef": {"name": SITE_CONFIGMAP, "key": n}}}
              for n in ("EOMATCH_PUBLIC_URL", "EOMATCH_INTERNAL_URL")),
        ],  # fmt: skip
        "readinessProbe": _http_probe("/_proxy/ping", inp.proxy_port),
        "livenessProbe": _http_probe("/_proxy/ping", inp.proxy_port),
        "resources": RESOURCES["proxy"],
        "volumeMounts": mounts,
    }
    pod = {"containers": [container], "volumes": volumes}
    return [
        _config_map("proxy-conf", "proxy", {"nginx.conf": inp.proxy_conf, **inp.proxy_scripts}),
        _deployment("proxy", pod, 1),
        # Public: expose it with an Ingress or a LoadBalancer of the cluster's choice.
        _service("proxy", "proxy", ports),
        # /api/ with its metrics: keep it inside the cluster (or the VPN's load balancer).
        _service("proxy-internal", "proxy", [("internal", px.internal_port, inp.internal_port)]),
    ]


def _pg_isready(settings: Settings) -> dict[str, Any]:
    db = settings.stack.db
    return {
        "exec": {"command": ["pg_isready", "-U", db.admin_user, "-d", db.name]},
        "periodSeconds": DB_PROBE_PERIOD_S,
        "timeoutSeconds": PROBE_TIMEOUT_S,
        "failureThreshold": DB_PROBE_FAILURES,
    }


def _statefulset(name: str, settings: Settings, inp: K8sInputs, replicas: int, pod_extra: dict[str, Any],
                 container_extra: dict[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    db = settings.stack.db
    container = {
        "name": "postgres",
        "image": inp.db_image,
        **container_extra,
        "ports": [{"name": "postgres", "containerPort": DB_PORT}],
        "env": [
            {"name": "PGDATA", "value": PGDATA},
            {"name": "POSTGRES_USER", "value": db.admin_user},
            _secret_env("POSTGRES_PASSWORD", "EOMATCH_ADMIN_PASSWORD"),
            {"name": "POSTGRES_DB", "value": db.name},
        ],
        "readinessProbe": _pg_isready(settings),
        "livenessProbe": _pg_isready(settings),
        "resources": RESOURCES["db"],
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}, *mounts],
    }
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": DB_STORAGE}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(name, name),
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": _labels(name)},
            "template": {
                "metadata": {"labels": _labels(name)},
                "spec": {"securityContext": {"fsGroup": POSTGRES_UID}, "containers": [container], **pod_extra},
            },
            "volumeClaimTemplates": [claim],
        },
    }


STANDBY_SET = "db-standby"
"""The standbys' StatefulSet: pods ``db-standby-0`` ...; each has a Service with the name
Compose gives that standby (``db-replica``, ``db-replica-2``, ...)."""
HBA_PATH = "/etc/eomatch/pg_hba.conf"

BASEBACKUP = """set -eu
# A standby's first start: copy the primary into the empty volume (pg_basebackup -R
# writes standby.signal and primary_conninfo), through the slot migrate made for it:
# pod db-standby-N is standby N+1, slot {slot_prefix}<N+1>, as in Compose.
if [ -s "$PGDATA/PG_VERSION" ]; then exit 0; fi
slot={slot_prefix}$(( ${{HOSTNAME##*-}} + 1 ))
export PGPASSWORD="$EOMATCH_REPLICATION_PASSWORD"
rm -rf "$PGDATA" && mkdir -p "$PGDATA" && chmod 0700 "$PGDATA"
pg_basebackup -h {host} -p {port} -U {user} -D "$PGDATA" -S "$slot" -R -X stream -c fast \\
  || {{ rm -rf "$PGDATA"; exit 1; }}
"""


def basebackup_script(settings: Settings, host: str = "db", port: int = DB_PORT) -> str:
    """The standbys' init container: a copy of the primary at ``host:port`` on first start,
    kept on later starts; a failed copy is removed and retried by Kubernetes."""
    import shlex

    from eomatch.stack.replica import SLOT_PREFIX

    return BASEBACKUP.format(host=host, port=port, user=shlex.quote(settings.stack.db.replication_user), slot_prefix=SLOT_PREFIX)


def _db(settings: Settings, inp: K8sInputs) -> list[dict[str, Any]]:
    """The primary and, with ``stack.db.replicas``, its hot standbys, as in Compose: the
    primary's pg_hba admits the replication role; ``migrate`` makes role and slots."""
    from eomatch.stack.replica import compose_replica_services, render_pg_hba

    replicas = settings.stack.db.replicas
    docs: list[dict[str, Any]] = [_service("db", "db", [("postgres", DB_PORT, DB_PORT)], headless=True)]
    if not replicas:
        docs.append(_statefulset("db", settings, inp, 1, {}, {}, []))
        return docs
    docs.append(_config_map("db-hba", "db", {"pg_hba.conf": render_pg_hba(settings)}))
    docs.append(_statefulset(
        "db", settings, inp, 1, {"volumes": [{"name": "hba", "configMap": {"name": "db-hba"}}]},
        {"args": ["postgres", "-c", f"hba_file={HBA_PATH}"]},
        [{"name": "hba", "mountPath": HBA_PATH, "subPath": "pg_hba.conf", "readOnly": True}],
    ))  # fmt: skip
    init = {
        "name": "basebackup",
        "image": inp.db_image,
        "command": ["sh", "-c", basebackup_script(settings)],
        "env": [{"name": "PGDATA", "value": PGDATA},
                _secret_env("EOMATCH_REPLICATION_PASSWORD", "EOMATCH_REPLICATION_PASSWORD")],  # fmt: skip
        "securityContext": {"runAsUser": POSTGRES_UID, "runAsGroup": POSTGRES_UID},
        "resources": RESOURCES["migrate"],
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }
    docs.append(_service(STANDBY_SET, STANDBY_SET, [("postgres", DB_PORT, DB_PORT)], headless=True))
    docs.append(_statefulset(STANDBY_SET, settings, inp, replicas, {"initContainers": [init]},
                             {"args": ["postgres", "-c", "hot_standby=on", "-c", "hot_standby_feedback=on"]}, []))  # fmt: skip
    for ordinal, name in enumerate(compose_replica_services(settings)):
        service = _service(name, STANDBY_SET, [("postgres", DB_PORT, DB_PORT)])
        service["spec"]["selector"] = {**_labels(STANDBY_SET), "statefulset.kubernetes.io/pod-name": f"{STANDBY_SET}-{ordinal}"}
        docs.append(service)
    return docs


def k8s_manifests(settings: Settings, inp: K8sInputs) -> dict[str, list[dict[str, Any]]]:
    """Every manifest by file name under ``k8s/`` (several documents to a file)."""
    files: dict[str, list[dict[str, Any]]] = {
        "settings.yaml": [_config_map("eomatch-settings", "api", {"settings.yaml": inp.settings_yaml})],
        "db.yaml": _db(settings, inp),
        "migrate.yaml": [_migrate(settings, inp)],
        "api-internal.yaml": [_api(settings, inp, "internal"),
                              _service("api-internal", "api-internal", [("http", inp.api_port, inp.api_port)])],
        "api-external.yaml": [_api(settings, inp, "external"), _external_hpa(settings),
                              _service("api-external", "api-external", [("http", inp.api_port, inp.api_port)])],
        "browser.yaml": _browser(inp),
        "proxy.yaml": _proxy(settings, inp),
    }  # fmt: skip
    for docs in files.values():
        for doc in docs:
            name = doc["metadata"]["name"]
            if not _DNS_LABEL.match(name):
                raise ConfigError(f"Kubernetes name '{name}' is not a DNS label")
    return files


def _kustomization(files: list[str], inp: K8sInputs) -> dict[str, Any]:
    images = []
    for ref in (inp.api_image, inp.browser_image, inp.proxy_image, inp.db_image):
        name, _, tag = ref.rpartition(":")
        images.append({"name": name, "newName": name, "newTag": tag})
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
        # the registry the cluster pulls from: `kustomize edit set image eomatch-api=REGISTRY/eomatch-api:TAG`
        "images": images,
    }


HEADER = (
    "# eomatch on Kubernetes: rendered by `eomatch-stack render-deploy` from the same settings\n"
    "# as compose.yaml; do not edit by hand (override in a kustomize overlay). Secrets are\n"
    "# referenced by name only: docs/operations.md, \"Kubernetes\".\n"
)


def render_k8s_files(settings: Settings, inp: K8sInputs) -> dict[str, str]:
    """``k8s/<file>`` texts: the manifests and a ``kustomization.yaml`` listing them."""
    manifests = k8s_manifests(settings, inp)
    out = {f"k8s/{name}": HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=1000) for name, docs in manifests.items()}
    out["k8s/kustomization.yaml"] = HEADER + yaml.safe_dump(_kustomization(list(manifests), inp), sort_keys=False)
    return out
