"""The Kubernetes gate through the real client and the emulated API: rollout waits and deadlines,
the expected version, StatefulSets, Endpoints, and clusters that refuse or never answer."""

from __future__ import annotations

import time

import pytest

from test_kubernetes_checks import (  # noqa: F401 - cluster and run_k8s are fixtures
    CONTAINER, NS, SERVICE, cluster, k8s_environment, run_k8s, write_kubeconfig)


def test_rollout_waits_until_complete_within_the_deadline(cluster, run_k8s):
    cluster.deployment["status"].update(updatedReplicas=1, replicas=3, availableReplicas=2)
    cluster.rollout_after_reads = 4
    run = run_k8s("-k", "rolled_out")
    assert run.ret == 0, run.output
    assert cluster.deployment_reads >= 4


def test_rollout_not_complete_by_the_deadline_fails_with_kubectls_message(cluster, run_k8s):
    cluster.deployment["status"].update(updatedReplicas=2, replicas=2, availableReplicas=1)
    started = time.monotonic()
    run = run_k8s("-k", "rolled_out", rollout_timeout_s=1)
    assert run.ret == 1
    assert run.record("test_workloads_rolled_out")["message"] == (
        "shop/Deployment/api rollout ('Waiting for deployment \"api\" rollout to finish: 1 of 2 updated replicas "
        "are available...') == 'complete' on kubernetes.staging")
    assert time.monotonic() - started < 1 + 3


def test_progress_deadline_exceeded_fails_at_once(cluster, run_k8s):
    cluster.deployment["status"].update(updatedReplicas=1, availableReplicas=1)
    cluster.deployment["status"]["conditions"][1].update(status="False", reason="ProgressDeadlineExceeded")
    run = run_k8s("-k", "rolled_out", rollout_timeout_s=30)
    assert run.record("test_workloads_rolled_out")["message"] == (
        "shop/Deployment/api rollout ('error: deployment \"api\" exceeded its progress deadline') == 'complete' "
        "on kubernetes.staging")
    assert cluster.deployment_reads == 1


def test_old_image_running_fails_the_version_check(cluster, run_k8s):
    cluster.pods[1]["spec"]["containers"][0] = {**CONTAINER, "image": "registry.example.com/shop/api:1.4.2"}
    run = run_k8s("-k", "version")
    assert run.record("test_workloads_run_expected_version")["message"] == (
        "shop/Deployment/api containers_not_on_1.4.3 ({'api-7d4b9c8f6d-q8m4z/api': '1.4.2'}) == {} "
        "on kubernetes.staging")


def test_expect_version_option_overrides_the_environment(cluster, run_k8s):
    run = run_k8s("-k", "version", "--expect-version", "1.5.0")
    assert run.record("test_workloads_run_expected_version")["message"].startswith(
        "shop/Deployment/api containers_not_on_1.5.0 ({'api-7d4b9c8f6d-x2k9p/api': '1.4.3', ")


def test_unreachable_cluster_errors_once_and_skips_the_rest(tmp_path, write_env, run_checks, refused_port):
    started = time.monotonic()
    run = run_checks(write_env(k8s_environment(write_kubeconfig(tmp_path, f"http://127.0.0.1:{refused_port}"))),
                     "-k", "test_kubernetes")
    records = [r for r in run.results["checks"] if r["kind"] == "kubernetes"]
    assert run.ret == 1
    assert records[0]["outcome"] == "error"
    assert records[0]["message"] == (
        f"could not measure on kubernetes.staging: read_namespaced_deployment(api, {NS}): "
        "NewConnectionError: Failed to establish a new connection: [Errno 111] Connection refused")
    assert {r["outcome"] for r in records[1:]} == {"skipped"}
    assert all(r["message"].startswith("kubernetes.staging is unreachable: read_namespaced_deployment")
               for r in records[1:])
    assert time.monotonic() - started < 2 + 3


def test_silent_cluster_errors_within_the_request_timeout(tmp_path, write_env, run_checks, silent_port):
    started = time.monotonic()
    run = run_checks(write_env(k8s_environment(write_kubeconfig(tmp_path, f"http://127.0.0.1:{silent_port}"),
                                               request_timeout_s=1)), "-k", "test_kubernetes")
    records = [r for r in run.results["checks"] if r["kind"] == "kubernetes"]
    assert records[0]["message"] == (
        f"could not measure on kubernetes.staging: read_namespaced_deployment(api, {NS}): no answer within 1 s")
    assert {r["outcome"] for r in records[1:]} == {"skipped"}
    assert time.monotonic() - started < 1 + 3


STATEFULSET = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "db", "namespace": NS, "generation": 3},
    "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
             "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
             "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [CONTAINER]}}},
    "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 2, "currentReplicas": 3,
               "updatedReplicas": 3, "currentRevision": "db-5d8f", "updateRevision": "db-5d8f"},
}


def test_statefulset_rollout_read_through_the_apps_api(cluster, httpserver, run_k8s):
    httpserver.expect_request(f"/apis/apps/v1/namespaces/{NS}/statefulsets/db").respond_with_json(STATEFULSET)
    run = run_k8s("-k", "rolled_out", workloads=[{"kind": "StatefulSet", "name": "db"}], rollout_timeout_s=0.5)
    assert run.record("test_workloads_rolled_out")["message"] == (
        "shop/StatefulSet/db rollout ('Waiting for 1 pods to be ready...') == 'complete' on kubernetes.staging")


def test_endpoints_are_read_where_endpointslices_are_not_served(httpserver, tmp_path, write_env, run_checks):
    httpserver.expect_request(f"/api/v1/namespaces/{NS}/services/api").respond_with_json(SERVICE)
    httpserver.expect_request(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices").respond_with_json(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}, status=404)
    httpserver.expect_request(f"/api/v1/namespaces/{NS}/endpoints/api").respond_with_json(
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "api", "namespace": NS},
         "subsets": [{"addresses": [{"ip": "10.0.0.12"}], "notReadyAddresses": [{"ip": "10.0.0.13"}],
                      "ports": [{"port": 8080}]}]})
    kubeconfig = write_kubeconfig(tmp_path, httpserver.url_for("").rstrip("/"))
    path = write_env(k8s_environment(kubeconfig, workloads=[], services=[{"name": "api", "min_ready": 2}]))
    run = run_checks(path, "-k", "endpoints")
    assert run.record("test_services_have_ready_endpoints")["message"] == (
        "shop/Service/api ready_endpoints (1) >= 2 on kubernetes.staging")


def test_kubernetes_target_model_rejects_in_cluster_with_kubeconfig(write_env):
    from opsproof.environment import load_environment
    from opsproof.errors import ConfigError

    path = write_env({"tier": "staging", "kubernetes": {"prod": {"in_cluster": True, "kubeconfig": "/x"}}})
    with pytest.raises(ConfigError, match="in_cluster excludes kubeconfig and context"):
        load_environment(path)


def test_commented_example_validates_and_default_validation_skips_examples(capsys):
    from opsproof.cli import main
    from opsproof.paths import project_root

    example = project_root() / "environments" / "examples" / "k8s-staging.yaml"
    assert main(["validate", str(example)]) == 0
    assert "(environment k8s-staging, tier staging; 1 kubernetes, 1 host, 1 backups)" in capsys.readouterr().out


def test_environment_without_clusters_never_imports_the_client(write_env, tmp_path):
    import subprocess
    import sys

    from opsproof.paths import project_root

    path = write_env({"tier": "staging", "host": {"box": {"host": "local://", "memory_available_pct": {"crit": 1}}}})
    root = project_root()
    script = (f"import sys, pytest; code = pytest.main(['-c', {str(root / 'pyproject.toml')!r}, '--rootdir', {str(root)!r}, "
              f"{str(root / 'checks')!r}, '--env', {str(path)!r}, '--reports-dir', {str(tmp_path)!r}, '-q']); "
              "print('kubernetes imported:', 'kubernetes' in sys.modules, 'exit', int(code))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=root)
    assert "kubernetes imported: False exit 0" in result.stdout, result.stdout + result.stderr


def test_two_workloads_share_one_rollout_deadline(cluster, httpserver, run_k8s):
    stuck = {**STATEFULSET, "metadata": {**STATEFULSET["metadata"], "name": "cache"}}
    httpserver.expect_request(f"/apis/apps/v1/namespaces/{NS}/statefulsets/db").respond_with_json(STATEFULSET)
    httpserver.expect_request(f"/apis/apps/v1/namespaces/{NS}/statefulsets/cache").respond_with_json(stuck)
    workloads = [{"kind": "StatefulSet", "name": "db"}, {"kind": "StatefulSet", "name": "cache"}]
    started = time.monotonic()
    run = run_k8s("-k", "rolled_out", workloads=workloads, rollout_timeout_s=1)
    assert time.monotonic() - started < 1 + 2, "each stuck workload must not get its own deadline"
    statuses = run.record("test_workloads_rolled_out")["measurements"][:2]
    assert statuses == [{"measure": f"{NS}/StatefulSet/{n} rollout_status",
                         "value": "Waiting for 1 pods to be ready..."} for n in ("db", "cache")]


def test_cli_passes_expect_version_to_the_checks():
    from opsproof.cli import _pytest_args, build_parser

    args, _ = build_parser().parse_known_args(["run", "--env", "staging", "--expect-version", "1.5.0"])
    command = _pytest_args(args, None)
    assert command[command.index("--expect-version") + 1] == "1.5.0"
