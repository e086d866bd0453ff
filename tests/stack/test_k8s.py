"""deploy/k8s/: valid Kubernetes (offline JSON schemas, strict) and the same images,
ports, paths, environment and settings as the Compose file and the local stack."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from eomatch.errors import ConfigError
from eomatch.settings import Settings, load_settings
from eomatch.stack.k8s import SECRET_NAME, SHARED_CLAIM, SHARED_MOUNT
from eomatch.stack.render import render_deploy_files, render_proxy_conf

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"


def _settings(tmp_path: Path, **stack: Any) -> Settings:
    return load_settings(overrides={"stack": {"state_dir": str(tmp_path), **stack}}, environ={})


def _manifests(files: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {
        rel: [d for d in yaml.safe_load_all(text) if d]
        for rel, text in files.items()
        if rel.startswith("k8s/") and rel != "k8s/kustomization.yaml"
    }


def _find(files: dict[str, str], kind: str, name: str) -> dict[str, Any]:
    docs = [d for docs in _manifests(files).values() for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(docs) == 1, (kind, name, len(docs))
    return docs[0]


def _container(files: dict[str, str], kind: str, name: str) -> dict[str, Any]:
    spec = _find(files, kind, name)["spec"]
    pod = spec["template"]["spec"]
    return pod["containers"][0]


def _validate_all(files: dict[str, str]) -> int:
    count = 0
    for rel, docs in _manifests(files).items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{rel} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}") from None
            count += 1
    return count


def _variants(tmp_path: Path) -> list[Settings]:
    """Defaults, and every branch of the render: TLS, /assets/, more external replicas,
    JSON logs, hot standbys."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    extra: dict[str, Any] = {
        "proxy": {"tls_cert": str(cert), "tls_key": str(key), "assets_root": f"{SHARED_MOUNT}/matchups"},
        "api": {"external_replicas": 3},
        "log_format": "json",
    }
    extra["db"] = {"replicas": 2}
    return [_settings(tmp_path), _settings(tmp_path, **extra)]


def test_manifests_are_valid_kubernetes_in_strict_mode(tmp_path: Path) -> None:
    for settings in _variants(tmp_path):
        files = render_deploy_files(settings)
        assert _validate_all(files) >= 14


def test_strict_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    """The check is real: an unknown field (strict mode) is refused."""
    files = render_deploy_files(_settings(tmp_path))
    doc = _find(files, "Deployment", "api-internal")
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_and_the_compose_images(tmp_path: Path) -> None:
    files = render_deploy_files(_settings(tmp_path))
    kust = yaml.safe_load(files["k8s/kustomization.yaml"])
    assert sorted(kust["resources"]) == sorted(rel.removeprefix("k8s/") for rel in _manifests(files))
    compose = yaml.safe_load(files["compose.yaml"])["services"]
    compose_images = {compose[s]["image"] for s in ("db", "api-internal", "api-external", "browser", "proxy")}
    assert {f"{i['newName']}:{i['newTag']}" for i in kust["images"]} == compose_images
    used = {c["image"] for docs in _manifests(files).values() for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")
            for c in d["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert used == compose_images


def _compose_probe_path(test: list[str]) -> tuple[str, int]:
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\s\"]*)", " ".join(test))
    assert url, test
    return url.group(2), int(url.group(1))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_apis_run_what_compose_runs(tmp_path: Path) -> None:
    settings = _settings(tmp_path, api={"external_replicas": 3})
    files = render_deploy_files(settings)
    compose = yaml.safe_load(files["compose.yaml"])["services"]
    for name in ("api-internal", "api-external"):
        c, svc = _container(files, "Deployment", name), compose[name]
        assert c["command"] == svc["command"] and c["image"] == svc["image"]
        port = int(c["command"][c["command"].index("--port") + 1])
        assert c["ports"] == [{"name": "http", "containerPort": port}]
        assert _find(files, "Service", name)["spec"]["ports"][0]["targetPort"] == port
        # the same environment names; plain values equal, passwords from the Secret
        env, compose_env = _env(c), svc["environment"]
        assert set(env) == set(compose_env)
        for key, value in compose_env.items():
            if str(value).startswith("${"):
                default = re.match(r"\$\{[A-Z_]+(?::-([^}]*))?", value).group(1)  # type: ignore[union-attr]
                if default is not None:
                    assert str(env[key]) == default, key
                else:
                    assert env[key]["secretKeyRef"] == {"name": SECRET_NAME, "key": re.match(r"\$\{([A-Z_]+)", value).group(1)}  # type: ignore[union-attr]
            else:
                assert env[key] == str(value), key
        # probes on the path and port Compose checks; liveness as often as Compose's healthcheck
        path, probe_port = _compose_probe_path(svc["healthcheck"]["test"])
        assert c["livenessProbe"]["httpGet"] == {"path": path, "port": probe_port}
        assert c["livenessProbe"]["periodSeconds"] == int(svc["healthcheck"]["interval"].rstrip("s"))
        assert c["readinessProbe"]["httpGet"]["path"] == "/_mgmt/health"
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/etc/eomatch", SHARED_MOUNT}
        assert all(m["readOnly"] for m in c["volumeMounts"])
        shared = next(v for v in _find(files, "Deployment", name)["spec"]["template"]["spec"]["volumes"] if v["name"] == "shared")
        assert shared["persistentVolumeClaim"] == {"claimName": SHARED_CLAIM, "readOnly": True}
        assert set(c["resources"]) == {"requests", "limits"}
    # Compose's default shared-drive mount is the same folder
    assert any(v.endswith(f":${{NFS_MOUNT:-{SHARED_MOUNT}}}:ro") for v in compose["api-internal"]["volumes"])
    assert _find(files, "Deployment", "api-internal")["spec"]["replicas"] == 1
    assert "replicas" not in _find(files, "Deployment", "api-external")["spec"]  # the HPA's
    hpa = _find(files, "HorizontalPodAutoscaler", "api-external")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "api-external"
    assert hpa["minReplicas"] == settings.stack.api.external_replicas == 3 <= hpa["maxReplicas"]
    # the local stack runs the same number of external replicas
    local = render_proxy_conf(settings, "local")
    block = local[local.index("upstream eomatch_external"):]
    assert block[: block.index("}")].count("server unix:") == 3


def test_configs_are_the_compose_files(tmp_path: Path) -> None:
    settings = _settings(tmp_path, log_format="json")
    files = render_deploy_files(settings)
    assert _find(files, "ConfigMap", "eomatch-settings")["data"] == {"settings.yaml": files["settings.yaml"]}
    proxy = _find(files, "ConfigMap", "proxy-conf")["data"]
    assert proxy["nginx.conf"] == files["nginx/proxy.conf"]
    browser = _find(files, "ConfigMap", "browser-conf")["data"]
    assert browser == {"nginx.conf": files["browser/nginx.conf"], "config.js": files["browser/config.js"]}
    # the proxy's entry-point scripts are the ones Compose mounts, under the same names
    compose = yaml.safe_load(files["compose.yaml"])["services"]
    mounted = {v.split(":")[1].rsplit("/", 1)[1]: v.split(":")[0] for v in compose["proxy"]["volumes"] if "docker-entrypoint.d" in v}
    assert mounted and {n: (DEPLOY / src).read_text() for n, src in mounted.items()} == {n: proxy[n] for n in mounted}
    c = _container(files, "Deployment", "proxy")
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {f"/docker-entrypoint.d/{n}" for n in mounted}
    # settings values reach the apps through the settings file
    assert yaml.safe_load(files["settings.yaml"])["stack"]["log_format"] == "json"


def test_proxy_ports_env_and_probes_match_compose(tmp_path: Path) -> None:
    settings = _settings(tmp_path, proxy={"tls_cert": str(tmp_path / "c.pem"), "tls_key": str(tmp_path / "k.pem"),
                                          "port": 8080, "internal_port": 8200})  # fmt: skip
    files = render_deploy_files(settings)
    svc = yaml.safe_load(files["compose.yaml"])["services"]["proxy"]
    published = {}  # container port -> default host port
    for spec in svc["ports"]:
        host_port = re.search(r":\$\{[A-Z_]+:-(\d+)\}:(\d+)$", spec)
        assert host_port, spec
        published[int(host_port.group(2))] = int(host_port.group(1))
    ports = {p["targetPort"]: p["port"] for p in _find(files, "Service", "proxy")["spec"]["ports"]}
    ports.update({p["targetPort"]: p["port"] for p in _find(files, "Service", "proxy-internal")["spec"]["ports"]})
    assert ports == published == {80: 8080, 443: settings.stack.proxy.tls_port, 8001: 8200}
    c = _container(files, "Deployment", "proxy")
    assert {p["containerPort"] for p in c["ports"]} == set(published)
    assert set(_env(c)) == set(svc["environment"])
    assert c["image"] == svc["image"]
    path, port = _compose_probe_path(svc["healthcheck"]["test"])
    assert c["readinessProbe"]["httpGet"] == c["livenessProbe"]["httpGet"] == {"path": path, "port": port}
    assert "/etc/nginx/eomatch/tls" in {m["mountPath"] for m in c["volumeMounts"]}
    browser = yaml.safe_load(files["compose.yaml"])["services"]["browser"]
    b = _container(files, "Deployment", "browser")
    path, port = _compose_probe_path(browser["healthcheck"]["test"])
    assert b["readinessProbe"]["httpGet"] == {"path": path, "port": port} and b["image"] == browser["image"]


def test_database_matches_compose(tmp_path: Path) -> None:
    files = render_deploy_files(_settings(tmp_path, db={"name": "calval", "admin_user": "calval_admin"}))
    db = yaml.safe_load(files["compose.yaml"])["services"]["db"]
    c = _container(files, "StatefulSet", "db")
    env = _env(c)
    assert env["POSTGRES_USER"] == db["environment"]["POSTGRES_USER"] == "calval_admin"
    assert env["POSTGRES_DB"] == db["environment"]["POSTGRES_DB"] == "calval"
    assert env["POSTGRES_PASSWORD"]["secretKeyRef"]["key"] == "EOMATCH_ADMIN_PASSWORD"
    assert c["readinessProbe"]["exec"]["command"] == shlex.split(db["healthcheck"]["test"][1])
    assert c["image"] == db["image"]
    assert _find(files, "Service", "db")["spec"]["ports"][0]["port"] == 5432
    migrate = _container(files, "Job", "migrate")
    compose_migrate = yaml.safe_load(files["compose.yaml"])["services"]["migrate"]
    assert migrate["command"] == compose_migrate["command"]
    assert set(_env(migrate)) == set(compose_migrate["environment"])


def test_secrets_are_referenced_by_name_never_written(tmp_path: Path) -> None:
    for settings in _variants(tmp_path):
        files = render_deploy_files(settings)
        keys = set()
        for docs in _manifests(files).values():
            for doc in docs:
                assert doc["kind"] != "Secret"
                text = yaml.safe_dump(doc)
                for ref in re.findall(r"secretKeyRef:\n\s+key: (\S+)\n\s+name: (\S+)", text):
                    assert ref[1] == SECRET_NAME
                    keys.add(ref[0])
                for env in re.findall(r"- name: (\S*(?:PASSWORD|API_KEYS))\n\s+(value|valueFrom):", text):
                    assert env[1] == "valueFrom", env
        assert {"EOMATCH_ADMIN_PASSWORD", "EOMATCH_API_PASSWORD", "EOMATCH_READ_PASSWORD", "EOMATCH_API_KEYS"} <= keys
        # the docs' `kubectl create secret` command names every key the manifests use
        docs_text = (REPO / "docs" / "operations.md").read_text()
        command = docs_text[docs_text.index(f"create secret generic {SECRET_NAME}"):]
        command = command[: command.index("```")]
        missing = [k for k in sorted(keys) if f"{k}=" not in command]
        assert not missing, missing


def test_hot_standbys_follow_stack_db_replicas(tmp_path: Path) -> None:
    none = render_deploy_files(_settings(tmp_path))
    assert not any("standby" in t or "db-replica" in t for r, t in none.items() if r.startswith("k8s/"))
    settings = _settings(tmp_path, db={"replicas": 2})
    files = render_deploy_files(settings)
    compose = yaml.safe_load(files["compose.yaml"])["services"]
    standby = _find(files, "StatefulSet", "db-standby")
    assert standby["spec"]["replicas"] == 2
    init = standby["spec"]["template"]["spec"]["initContainers"][0]
    script = init["command"][-1]
    assert "pg_basebackup -h db -p 5432 -U eomatch_replication" in script and " -R " in script
    assert _env(init)["EOMATCH_REPLICATION_PASSWORD"]["secretKeyRef"] == {"name": SECRET_NAME, "key": "EOMATCH_REPLICATION_PASSWORD"}
    # Compose's standbys by name: each a Service on one pod, running what Compose runs
    names = sorted(n for n in compose if n.startswith("db-replica"))
    assert names == ["db-replica", "db-replica-2"]
    for ordinal, name in enumerate(names):
        selector = _find(files, "Service", name)["spec"]["selector"]
        assert selector["statefulset.kubernetes.io/pod-name"] == f"db-standby-{ordinal}"
        assert f"eomatch_replica_{ordinal + 1}" in compose[name]["command"][0]  # the same slot
        assert " -c fast" in compose[name]["command"][0] and "-c fast" in script
    assert standby["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "postgres", "-c", "hot_standby=on", "-c", "hot_standby_feedback=on"]  # fmt: skip
    # the primary admits the replication role with Compose's pg_hba.conf
    primary = _find(files, "StatefulSet", "db")
    assert primary["spec"]["replicas"] == 1
    assert _find(files, "ConfigMap", "db-hba")["data"]["pg_hba.conf"] == files["db/pg_hba.conf"]
    assert primary["spec"]["template"]["spec"]["containers"][0]["args"] == compose["db"]["command"]
    # migrate makes the role and slots; the external API reads from the standbys, the
    # primary when none answers, as in Compose; the internal API from db
    assert set(_env(_container(files, "Job", "migrate"))) == set(compose["migrate"]["environment"])
    external = _env(_container(files, "Deployment", "api-external"))
    compose_env = compose["api-external"]["environment"]
    assert set(external) == set(compose_env)
    assert external["PGHOST"] == compose_env["PGHOST"].replace("${POSTGRES_HOST:-db}", "db") == "db-replica,db-replica-2,db"
    assert external["PGPORT"] == str(compose_env["PGPORT"]).replace("${POSTGRES_PORT:-5432}", "5432")
    for key in ("PGTARGETSESSIONATTRS", "DB_MIN_CONN_SIZE", "DB_MAX_INACTIVE_CONN_LIFETIME", "DB_MAX_QUERIES"):
        assert external[key] == str(compose_env[key]), key
    assert _env(_container(files, "Deployment", "api-internal"))["PGHOST"] == "db"
    # the APIs' settings name the standbys by the same Service names (health, metrics)
    hosts = yaml.safe_load(_find(files, "ConfigMap", "eomatch-settings")["data"]["settings.yaml"])["stack"]["db"]["replica_hosts"]
    assert hosts == ["db-replica:5432", "db-replica-2:5432"]


def test_assets_outside_the_shared_drive_is_a_one_line_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path, proxy={"assets_root": "/srv/elsewhere"})
    with pytest.raises(ConfigError, match=r"stack\.proxy\.assets_root '/srv/elsewhere' is not on the shared drive") as err:
        render_deploy_files(settings)
    assert "\n" not in str(err.value)
    files = render_deploy_files(_settings(tmp_path, proxy={"assets_root": f"{SHARED_MOUNT}/matchups"}))
    mount = next(m for m in _container(files, "Deployment", "proxy")["volumeMounts"] if m["name"] == "shared")
    assert mount["subPath"] == "matchups" and mount["readOnly"] is True
    compose = yaml.safe_load(files["compose.yaml"])["services"]["proxy"]
    assert any(v.endswith(f":{mount['mountPath']}:ro") for v in compose["volumes"])


def test_render_deploy_writes_k8s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eomatch.cli.stack import main

    out = tmp_path / "deploy"
    assert main(["render-deploy", "--out", str(out), "--state-dir", str(tmp_path / "state")]) == 0
    kust = yaml.safe_load((out / "k8s" / "kustomization.yaml").read_text())
    assert all((out / "k8s" / rel).is_file() for rel in kust["resources"])
    assert f"wrote {out / 'k8s' / 'kustomization.yaml'}" in capsys.readouterr().out


# --- the standbys' shell scripts, run against a real PostgreSQL ----------------------


def _pg(bin_dir: Path, user: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A PostgreSQL program as ``user`` (PostgreSQL refuses root)."""
    import os

    cmd = [str(bin_dir / args[0]) if (bin_dir / args[0]).exists() else args[0], *args[1:]]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=check, timeout=120)


@pytest.mark.stack
def test_standby_init_container_makes_a_streaming_standby(tmp_path: Path) -> None:
    """A standby pod's init container (basebackup_script) on this machine's PostgreSQL,
    against a primary set up as the manifests set it up (Compose's pg_hba.conf as
    hba_file; role and slot from db-setup's setup_replication): a hot standby streaming
    through its slot; a restart leaves the copy alone; a lost volume is copied again
    through the same slot; a wrong password copies nothing."""
    import os
    import pwd
    import shutil

    from conftest import make_state_dir

    from eomatch.pgstac import DbCredentials
    from eomatch.stack.k8s import basebackup_script
    from eomatch.stack.process import free_port
    from eomatch.stack.replica import render_pg_hba, replica_slot, setup_replication

    settings = load_settings(overrides={"stack": {"db": {"replicas": 1}}}, environ={})
    bin_dir = settings.stack.db.pg_bin_dir
    if not (bin_dir / "initdb").exists():
        pytest.skip(f"no PostgreSQL in {bin_dir}")
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    root = make_state_dir("eomatch-k8s-standby-")
    shutil.chown(root, user)
    primary, standby, sock = root / "primary", root / "standby" / "pgdata", root / "sock"
    _pg(bin_dir, user, "mkdir", "-p", str(sock), str(standby.parent))
    hba = root / "pg_hba.conf"
    hba.write_text(render_pg_hba(settings))
    hba.chmod(0o644)
    ports = {"primary": free_port(), "standby": free_port()}
    started: list[Path] = []
    try:
        _pg(bin_dir, user, "initdb", "-D", str(primary), "-U", "admin", "--auth=trust")
        opts = f"-p {ports['primary']} -k {sock} -c listen_addresses=127.0.0.1 -c hba_file={hba}"
        _pg(bin_dir, user, "pg_ctl", "-D", str(primary), "-o", opts, "-w", "start", "-l", str(root / "primary.log"))
        started.append(primary)
        _pg(bin_dir, user, "createdb", "-h", str(sock), "-p", str(ports["primary"]), "-U", "admin", "eomatch")
        password = "s3cret-" + os.urandom(6).hex()
        admin = DbCredentials("127.0.0.1", ports["primary"], "eomatch", "admin", "unused")
        setup_replication(admin, settings.stack.db.replication_user, password, [replica_slot(1)])
        psql = ["psql", "-h", str(sock), "-p", str(ports["primary"]), "-U", "admin", "-d", "eomatch", "-tAc"]
        _pg(bin_dir, user, *psql, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")

        script = basebackup_script(settings, "127.0.0.1", ports["primary"])
        env = {"EOMATCH_REPLICATION_PASSWORD": password, "PGDATA": str(standby), "HOSTNAME": "db-standby-0",
               "PATH": f"{bin_dir}:{os.environ['PATH']}"}  # fmt: skip
        wrong = _pg(bin_dir, user, "sh", "-c", script, env={**env, "EOMATCH_REPLICATION_PASSWORD": "wrong"}, check=False)
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, wrong.stderr
        assert _pg(bin_dir, user, "test", "-e", str(standby), check=False).returncode != 0  # nothing half-copied
        _pg(bin_dir, user, "sh", "-c", script, env=env)
        assert _pg(bin_dir, user, "test", "-f", str(standby / "standby.signal"), check=False).returncode == 0
        version = _pg(bin_dir, user, "stat", "-c", "%Y %i", str(standby / "PG_VERSION")).stdout
        _pg(bin_dir, user, "sh", "-c", script, env=env)  # a restart: the copy is kept
        assert _pg(bin_dir, user, "stat", "-c", "%Y %i", str(standby / "PG_VERSION")).stdout == version
        _pg(bin_dir, user, "rm", "-rf", str(standby))  # the volume lost: copied again, same slot
        _pg(bin_dir, user, "sh", "-c", script, env=env)

        opts = f"-p {ports['standby']} -k {sock} -c listen_addresses=127.0.0.1 -c hot_standby=on -c hot_standby_feedback=on"
        _pg(bin_dir, user, "pg_ctl", "-D", str(standby), "-o", opts, "-w", "start", "-l", str(root / "standby.log"))
        started.append(standby)
        standby_psql = ["psql", "-h", str(sock), "-p", str(ports["standby"]), "-U", "admin", "-d", "eomatch", "-tAc"]
        assert _pg(bin_dir, user, *standby_psql, "SELECT pg_is_in_recovery()").stdout.strip() == "t"
        _pg(bin_dir, user, *psql, "INSERT INTO t VALUES (2)")
        for _ in range(100):
            if _pg(bin_dir, user, *standby_psql, "SELECT count(*) FROM t").stdout.strip() == "2":
                break
            time.sleep(0.1)
        assert _pg(bin_dir, user, *standby_psql, "SELECT count(*) FROM t").stdout.strip() == "2"
        slots = _pg(bin_dir, user, *psql, "SELECT slot_name, active FROM pg_replication_slots").stdout.split()
        assert slots == [f"{replica_slot(1)}|t"], slots
    finally:
        for data in reversed(started):
            _pg(bin_dir, user, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)
