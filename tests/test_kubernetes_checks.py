"""Kubernetes checks through the real client against an emulated API server (no cluster can run here).

A pytest-httpserver on loopback answers the paths the official client calls with JSON shaped like
real API responses; a kubeconfig points the client at it. Each pod fault and rollout case is a
different answer from that server.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from kubernetes import client as _client, config as _config  # noqa: F401 - loaded once, kept across runs

NS = "shop"
NOW = datetime.now(timezone.utc)


def _ts(delta: timedelta = timedelta()) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


CONTAINER = {
    "name": "api", "image": "registry.example.com/shop/api:1.4.3", "ports": [{"containerPort": 8080}],
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
}

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "api", "namespace": NS, "generation": 7, "uid": "5c2e6d0e-0f7b-4a5e-9b1e-1b7f2a9c0d11",
                 "annotations": {"deployment.kubernetes.io/revision": "7"}, "labels": {"app": "api"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
             "progressDeadlineSeconds": 600,
             "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [CONTAINER]}}},
    "status": {"observedGeneration": 7, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
               "availableReplicas": 2,
               "conditions": [
                   {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                   {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                    "message": 'ReplicaSet "api-7d4b9c8f6d" has successfully progressed.'}]},
}


def _pod(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "api", "pod-template-hash": "7d4b9c8f6d"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d4b9c8f6d",
                                          "uid": "0b1c", "controller": True}]},
        "spec": {"containers": [CONTAINER], "nodeName": "node-1", "restartPolicy": "Always"},
        "status": {"phase": "Running", "podIP": "10.0.0.12", "startTime": _ts(-timedelta(hours=2)),
                   "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                                  {"type": "ContainersReady", "status": "True"},
                                  {"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": "api", "ready": True, "started": True, "restartCount": 0,
                                          "image": "registry.example.com/shop/api:1.4.3",
                                          "imageID": "registry.example.com/shop/api@sha256:9f2a",
                                          "state": {"running": {"startedAt": _ts(-timedelta(hours=2))}},
                                          "lastState": {}}]},
    }


PODS = [_pod("api-7d4b9c8f6d-x2k9p"), _pod("api-7d4b9c8f6d-q8m4z")]

ENDPOINT_SLICE = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
    "metadata": {"name": "api-abcde", "namespace": NS, "labels": {"kubernetes.io/service-name": "api"}},
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    "endpoints": [{"addresses": ["10.0.0.12"], "conditions": {"ready": True, "serving": True, "terminating": False},
                   "targetRef": {"kind": "Pod", "name": "api-7d4b9c8f6d-x2k9p", "namespace": NS}},
                  {"addresses": ["10.0.0.13"], "conditions": {"ready": True, "serving": True, "terminating": False},
                   "targetRef": {"kind": "Pod", "name": "api-7d4b9c8f6d-q8m4z", "namespace": NS}}],
}

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": NS},
           "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                    "type": "ClusterIP", "clusterIP": "10.96.0.20"}}

CRONJOB = {
    "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "db-backup", "namespace": NS},
    "spec": {"schedule": "0 2 * * *", "concurrencyPolicy": "Forbid",
             "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                 {"name": "backup", "image": "registry.example.com/shop/backup:2.1.0"}]}}}}},
    "status": {"lastScheduleTime": _ts(-timedelta(hours=3)), "lastSuccessfulTime": _ts(-timedelta(hours=3))},
}


def _list(kind: str, items: list, api_version: str = "v1") -> dict:
    return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": "4711"}, "items": items}


def _warning(name: str, reason: str, message: str, age: timedelta) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
            "metadata": {"name": f"{name}.17a3", "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": NS},
            "count": 4, "firstTimestamp": _ts(-age), "lastTimestamp": _ts(-age)}


def write_kubeconfig(directory, server: str) -> str:
    """A kubeconfig like kubectl writes, pointing the client at ``server`` with a bearer token."""
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulated",
        "clusters": [{"name": "emulated", "cluster": {"server": server}}],
        "users": [{"name": "gate", "user": {"token": "emulated-token-not-secret"}}],
        "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "gate", "namespace": NS}}],
    }))
    return str(path)


class Cluster:
    """What the emulated API serves; tests change a copy, the server answers from it."""

    def __init__(self, httpserver):
        self.deployment = copy.deepcopy(DEPLOYMENT)
        self.pods = copy.deepcopy(PODS)
        self.events: list[dict] = [_warning("api-6c5d8b7f9a-old01", "BackOff", "old pod of an older release",
                                            timedelta(hours=5))]
        self.slices = [copy.deepcopy(ENDPOINT_SLICE)]
        self.cronjob = copy.deepcopy(CRONJOB)
        self.deployment_reads = 0
        self.rollout_after_reads: int | None = None  # the rollout completes at this read
        self.requests: list[str] = []
        self._server = httpserver
        base = f"/apis/apps/v1/namespaces/{NS}/deployments/api"
        httpserver.expect_request(base, method="GET").respond_with_handler(self._deployment)
        for path, answer in ((f"/api/v1/namespaces/{NS}/pods", lambda: _list("Pod", self.pods)),
                             (f"/api/v1/namespaces/{NS}/events", lambda: _list("Event", self.events)),
                             (f"/api/v1/namespaces/{NS}/services/api", lambda: SERVICE),
                             (f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
                              lambda: _list("EndpointSlice", self.slices, "discovery.k8s.io/v1")),
                             (f"/apis/batch/v1/namespaces/{NS}/cronjobs/db-backup", lambda: self.cronjob)):
            httpserver.expect_request(path, method="GET").respond_with_handler(self._json(answer))

    def _json(self, answer):
        from werkzeug import Response
        import json

        def handler(request):
            self.requests.append(f"{request.method} {request.full_path.rstrip('?')}")
            return Response(json.dumps(answer()), content_type="application/json")

        return handler

    def _deployment(self, request):
        self.deployment_reads += 1
        obj = copy.deepcopy(self.deployment)
        if self.rollout_after_reads is not None and self.deployment_reads >= self.rollout_after_reads:
            obj["status"].update(updatedReplicas=2, replicas=2, availableReplicas=2, readyReplicas=2)
        return self._json(lambda: obj)(request)

    def kubeconfig(self, directory) -> str:
        return write_kubeconfig(directory, self._server.url_for("").rstrip("/"))


@pytest.fixture
def cluster(httpserver):
    return Cluster(httpserver)


def k8s_environment(kubeconfig: str, **target) -> dict:
    spec = {"kubeconfig": kubeconfig, "namespace": NS, "request_timeout_s": 2, "rollout_timeout_s": 3,
            "poll_interval_s": 0.2, "restart_limit": 3,
            "workloads": [{"kind": "Deployment", "name": "api", "version": "1.4.3"}],
            "services": [{"name": "api"}], "cronjobs": [{"name": "db-backup", "max_age_h": 26}]}
    spec.update(target)
    return {"tier": "staging", "kubernetes": {"staging": spec}}


@pytest.fixture
def run_k8s(cluster, tmp_path, write_env, run_checks):
    def run(*args, **target):
        return run_checks(write_env(k8s_environment(cluster.kubeconfig(tmp_path), **target)), "-k", "test_kubernetes",
                          *args)

    return run


def test_healthy_cluster_passes_every_check_with_read_only_requests(cluster, run_k8s):
    run = run_k8s()
    assert run.ret == 0, run.output
    outcomes = {r["check"]: r["outcome"] for r in run.results["checks"] if r["kind"] == "kubernetes"}
    assert set(outcomes.values()) == {"passed"}, outcomes
    assert len(outcomes) == 11
    rollout = run.record("test_workloads_rolled_out", "staging")["measurements"]
    assert rollout[0] == {"measure": "shop/Deployment/api rollout_status",
                          "value": 'deployment "api" successfully rolled out'}
    assert all(r.startswith("GET ") for r in cluster.requests)
    assert f"GET /api/v1/namespaces/{NS}/pods?labelSelector=app%3Dapi" in cluster.requests
    assert f"GET /api/v1/namespaces/{NS}/events?fieldSelector=type%3DWarning" in cluster.requests


def _container_status(pod: dict) -> dict:
    return pod["status"]["containerStatuses"][0]


def test_crash_looping_pod_fails_ready_waiting_and_restarts(cluster, run_k8s):
    pod = cluster.pods[0]
    pod["status"]["conditions"][1]["status"] = "False"
    _container_status(pod).update(ready=False, restartCount=7, state={"waiting": {
        "reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=api"}})
    cluster.events.append(_warning(pod["metadata"]["name"], "BackOff", "Back-off restarting failed container api",
                                   timedelta(minutes=2)))
    run = run_k8s()
    assert run.ret == 1
    assert run.record("test_pods_ready")["message"] == (
        "shop/Deployment/api pods_not_ready (['api-7d4b9c8f6d-x2k9p']) == [] on kubernetes.staging")
    assert run.record("test_containers_not_waiting_on_errors")["message"] == (
        "shop/Deployment/api containers_waiting ({'api-7d4b9c8f6d-x2k9p/api': 'CrashLoopBackOff'}) == {} "
        "on kubernetes.staging")
    assert run.record("test_restarts_within_limit")["message"] == (
        "shop/Deployment/api max_restarts (7) <= 3 on kubernetes.staging")
    assert run.record("test_no_recent_warning_events")["message"] == (
        "shop/Deployment/api warning_events_30m (['api-7d4b9c8f6d-x2k9p: BackOff: Back-off restarting failed "
        "container api']) == [] on kubernetes.staging")
    assert run.record("test_pods_running_phase")["outcome"] == "passed"


def test_image_pull_backoff_and_pending_phase_fail(cluster, run_k8s):
    pod = cluster.pods[1]
    pod["status"]["phase"] = "Pending"
    _container_status(pod).update(ready=False, state={"waiting": {"reason": "ImagePullBackOff",
                                                                  "message": 'Back-off pulling image "api:1.4.3"'}})
    run = run_k8s("-k", "waiting or phase")
    assert run.record("test_containers_not_waiting_on_errors")["message"] == (
        "shop/Deployment/api containers_waiting ({'api-7d4b9c8f6d-q8m4z/api': 'ImagePullBackOff'}) == {} "
        "on kubernetes.staging")
    assert run.record("test_pods_running_phase")["message"] == (
        "shop/Deployment/api pods_not_running ({'api-7d4b9c8f6d-q8m4z': 'Pending'}) == {} on kubernetes.staging")


def test_oom_killed_last_state_fails(cluster, run_k8s):
    _container_status(cluster.pods[0]).update(restartCount=1, lastState={"terminated": {
        "exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-23T16:40:00Z"}})
    run = run_k8s("-k", "oom")
    assert run.record("test_containers_not_oom_killed")["message"] == (
        "shop/Deployment/api containers_oom_killed ({'api-7d4b9c8f6d-x2k9p/api': '2026-11-23T16:40:00Z'}) == {} "
        "on kubernetes.staging")


def test_service_without_ready_endpoints_fails(cluster, run_k8s):
    for endpoint in cluster.slices[0]["endpoints"]:
        endpoint["conditions"]["ready"] = False
    run = run_k8s("-k", "endpoints")
    assert run.record("test_services_have_ready_endpoints")["message"] == (
        "shop/Service/api ready_endpoints (0) >= 1 on kubernetes.staging")


def test_cronjob_without_a_recent_success_fails(cluster, run_k8s):
    fifty_hours_ago = datetime.now(timezone.utc) - timedelta(hours=50)  # not NOW: the run may start minutes later
    cluster.cronjob["status"]["lastSuccessfulTime"] = fifty_hours_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = run_k8s("-k", "cronjobs")
    assert run.record("test_cronjobs_succeeded_recently")["message"] == (
        "shop/CronJob/db-backup last_success_age_h (50.0) <= 26 on kubernetes.staging")


def test_latest_tag_missing_probes_and_limits_are_warnings(cluster, run_k8s):
    container = {"name": "api", "image": "registry.example.com/shop/api:latest"}
    cluster.deployment["spec"]["template"]["spec"]["containers"] = [container]
    run = run_k8s("-k", "hygiene")
    record = run.record("test_workloads_follow_configuration_hygiene")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert record["message"] == "; ".join(
        f"shop/Deployment/api {finding} (1) <= 0 on kubernetes.staging (warn)"
        for finding in ("unpinned_images", "missing_probes", "missing_resources"))
