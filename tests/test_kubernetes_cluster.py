"""The cluster-wide Kubernetes checks through the real client against the emulated API server.

As in test_kubernetes_checks.py, a loopback pytest-httpserver answers the paths the official client calls.
Objects carry apiVersion, kind and metadata, and their status is written as the controllers write it
(the kubelet's node conditions, the HPA controller's autoscaling/v2 conditions, the disruption controller's
PDB status, cert-manager's Certificate status; reference: kubernetes/api types and the controllers' code).
The TLS secret's tls.crt is a real chain made here with cryptography; its tls.key is a canary that must
reach no artifact.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from kubernetes import client as _client, config as _config  # noqa: F401 - loaded once, kept across runs
from werkzeug import Response

from test_kubernetes_checks import NS, _pod, k8s_environment, write_kubeconfig

KEY_CANARY = "tls-key-canary-9f3e2a71"
CHECKS = ("test_nodes_ready_without_pressure", "test_namespace_pods_running_and_healthy",
          "test_namespace_has_no_recent_warning_events", "test_autoscalers_keep_up_and_can_scale",
          "test_disruption_budgets_allow_a_disruption", "test_volume_claims_bound",
          "test_cert_manager_certificates_ready_and_not_expiring", "test_ingress_tls_secrets_not_expiring")


def ts(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, status: str, reason: str, message: str, heartbeat: bool = True) -> dict:
    found = {"type": kind, "status": status, "reason": reason, "message": message,
             "lastTransitionTime": ts(-timedelta(days=30))}
    if heartbeat:  # node conditions carry one; metav1.Condition (PDB, HPA, cert-manager) does not
        found["lastHeartbeatTime"] = ts(-timedelta(seconds=20))
    return found


def node(name: str, **statuses) -> dict:
    """A node as the kubelet reports it: the three pressure conditions, then Ready (kept last)."""
    healthy = {"MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
               "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
               "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
               "Ready": ("True", "KubeletReady", "kubelet is posting ready status")}
    healthy.update(statuses)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "node-role.kubernetes.io/worker": ""}},
            "spec": {"podCIDR": "10.244.1.0/24", "providerID": f"aws:///eu-west-1a/i-{name}"},
            "status": {"conditions": [condition(kind, *value) for kind, value in healthy.items()],
                       "capacity": {"cpu": "4", "memory": "16300652Ki", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.29.4", "containerRuntimeVersion": "containerd://1.7.13"}}}


def job_pod() -> dict:
    """A CronJob's finished run: Succeeded, and not Ready (PodCompleted), which is how it should be."""
    pod = _pod("db-backup-28901234-x7k2q")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "db-backup-28901234",
                                           "uid": "4d2a", "controller": True}]
    pod["status"].update(phase="Succeeded", conditions=[
        {"type": "Ready", "status": "False", "reason": "PodCompleted"},
        {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"}])
    pod["status"]["containerStatuses"][0].update(ready=False, state={"terminated": {
        "exitCode": 0, "reason": "Completed", "finishedAt": ts(-timedelta(hours=3))}})
    return pod


def terminating_pod() -> dict:
    """A pod of the previous ReplicaSet being deleted during the rollout: no longer Ready, not judged."""
    pod = _pod("api-6c5d8b7f9a-old01")
    pod["metadata"]["deletionTimestamp"] = ts(timedelta(seconds=25))
    pod["status"]["conditions"][1]["status"] = "False"
    return pod


def autoscaler(name: str, current: int, desired: int, maximum: int = 10, *conditions) -> dict:
    status = {"observedGeneration": 3, "lastScaleTime": ts(-timedelta(minutes=40)), "desiredReplicas": desired,
              "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                  "averageUtilization": 61, "averageValue": "305m"}}}],
              "conditions": list(conditions) or [
                  condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size", False),
                  condition("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate "
                            "a replica count from cpu resource utilization (percentage of request)", False),
                  condition("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the "
                            "acceptable range", False)]}
    if current:  # omitempty: absent when 0
        status["currentReplicas"] = current
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": NS, "generation": 3},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                     "minReplicas": 2, "maxReplicas": maximum,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 70}}}]},
            "status": status}


def disruption_budget(allowed: int, healthy: int = 2, desired: int = 1) -> dict:
    reason = "SufficientPods" if allowed else "InsufficientPods"
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "api", "namespace": NS, "generation": 1},
            "spec": {"minAvailable": desired, "selector": {"matchLabels": {"app": "api"}}},
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": healthy,
                       "desiredHealthy": desired, "expectedPods": 2,
                       "conditions": [{"type": "DisruptionAllowed", "status": "True" if allowed else "False",
                                       "reason": reason, "message": "", "observedGeneration": 1,
                                       "lastTransitionTime": ts(-timedelta(days=2))}]}}


def volume_claim(name: str, phase: str | None) -> dict:
    status = {"phase": phase, "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}} if phase else {}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3",
                     "resources": {"requests": {"storage": "10Gi"}}, "volumeName": f"pvc-{name}"},
            "status": status}


def certificate(days_left: float, ready=("True", "Ready", "Certificate is up to date and has not expired")) -> dict:
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "shop-tls", "namespace": NS, "generation": 1},
            "spec": {"secretName": "shop-tls", "dnsNames": ["shop.example.com"],
                     "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}},
            "status": {"conditions": [{**condition("Ready", *ready, heartbeat=False), "observedGeneration": 1}],
                       "notBefore": ts(timedelta(days=days_left - 90)), "notAfter": ts(timedelta(days=days_left)),
                       "renewalTime": ts(timedelta(days=days_left - 30)), "revision": 3}}


def ingress() -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": NS, "generation": 2},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"},
                             {"hosts": ["passthrough.example.com"]}],  # SNI routing only: no secret to read
                     "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                               "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb-1.eu-west-1.elb.amazonaws.com"}]}}}


def tls_secret(leaf_days_left: float) -> dict:
    """A kubernetes.io/tls Secret as cert-manager writes it: the leaf and its CA in tls.crt, the key, ca.crt."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(timezone.utc)

    def issue(subject, issuer, key, signer, days, ca):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=30))
                .not_valid_after(now + timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(signer, hashes.SHA256()))

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shop Test CA")])
    ca = issue(ca_name, ca_name, ca_key, ca_key, 3650, True)
    leaf = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")]), ca_name, leaf_key, ca_key,
                 leaf_days_left, False)
    pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (leaf, ca))
    encode = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "shop-tls", "namespace": NS,
                         "annotations": {"cert-manager.io/certificate-name": "shop-tls"}},
            "data": {"tls.crt": encode(pem), "tls.key": encode(KEY_CANARY.encode()),
                     "ca.crt": encode(ca.public_bytes(serialization.Encoding.PEM))}}


def warning(name: str, reason: str, message: str, age: timedelta, count: int = 1) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
            "metadata": {"name": f"{name}.17a3", "namespace": NS, "creationTimestamp": ts(-age - timedelta(hours=1))},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": NS}, "count": count,
            "firstTimestamp": ts(-age - timedelta(hours=1)), "lastTimestamp": ts(-age)}


class ClusterAPI:
    """What the emulated API serves for the cluster-wide checks; tests change it before the run."""

    def __init__(self, httpserver):
        self.nodes = [node("node-1"), node("node-2")]
        self.pods = [_pod("api-7d4b9c8f6d-x2k9p"), _pod("api-7d4b9c8f6d-q8m4z"), job_pod(), terminating_pod()]
        self.events = [warning("api-6c5d8b7f9a-old01", "BackOff", "an older release", timedelta(hours=5), 12)]
        self.autoscalers = [autoscaler("api", 4, 4)]
        self.budgets = [disruption_budget(1)]
        self.claims = [volume_claim("data-db-0", "Bound")]
        self.certificates: list[dict] | None = [certificate(60)]
        self.ingresses = [ingress()]
        self.secret = tls_secret(60)
        self.requests: list[str] = []
        self._server = httpserver
        lists = {"/api/v1/nodes": ("v1", "Node", lambda: self.nodes),
                 f"/api/v1/namespaces/{NS}/pods": ("v1", "Pod", lambda: self.pods),
                 f"/api/v1/namespaces/{NS}/events": ("v1", "Event", lambda: self.events),
                 f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers":
                     ("autoscaling/v2", "HorizontalPodAutoscaler", lambda: self.autoscalers),
                 f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets":
                     ("policy/v1", "PodDisruptionBudget", lambda: self.budgets),
                 f"/api/v1/namespaces/{NS}/persistentvolumeclaims":
                     ("v1", "PersistentVolumeClaim", lambda: self.claims),
                 f"/apis/cert-manager.io/v1/namespaces/{NS}/certificates":
                     ("cert-manager.io/v1", "Certificate", lambda: self.certificates),
                 f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses":
                     ("networking.k8s.io/v1", "Ingress", lambda: self.ingresses)}
        for path, (api_version, kind, items) in lists.items():
            httpserver.expect_request(path, method="GET").respond_with_handler(self._list(api_version, kind, items))
        httpserver.expect_request(f"/api/v1/namespaces/{NS}/secrets/shop-tls", method="GET").respond_with_handler(
            self._answer(lambda: self.secret))

    def _answer(self, body):
        def handler(request):
            self.requests.append(f"{request.method} {request.full_path.rstrip('?')}")
            found = body()
            if found is None:  # the resource (or its CRD) does not exist
                return Response(json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404}), status=404,
                                content_type="application/json")
            return Response(json.dumps(copy.deepcopy(found)), content_type="application/json")

        return handler

    def _list(self, api_version: str, kind: str, items):
        def body():
            found = items()
            return None if found is None else {"apiVersion": api_version, "kind": f"{kind}List",
                                               "metadata": {"resourceVersion": "4711"}, "items": found}

        return self._answer(body)

    def kubeconfig(self, directory) -> str:
        return write_kubeconfig(directory, self._server.url_for("").rstrip("/"))


@pytest.fixture
def api(httpserver):
    return ClusterAPI(httpserver)


EVERYTHING = {"nodes": {"min_ready": 2}, "namespace_pods": True, "namespace_events": {"window": "30m"},
              "autoscalers": True, "disruption_budgets": True, "volume_claims": True,
              "certificates": {"days_left": {"warn": 21, "crit": 7}},
              "ingress_tls": {"days_left": {"warn": 21, "crit": 7}}}


@pytest.fixture
def run_cluster(api, tmp_path, write_env, run_checks):
    def run(*args, **target):
        settings = {"workloads": [], "services": [], "cronjobs": [], **EVERYTHING, **target}
        return run_checks(write_env(k8s_environment(api.kubeconfig(tmp_path), **settings)), "-k", "test_cluster", *args)

    return run


def artifacts(run) -> str:
    return "".join(path.read_text(errors="replace") for path in Path(run.run_dir).rglob("*") if path.is_file())


def test_healthy_cluster_passes_every_cluster_check_reading_only(api, run_cluster):
    run = run_cluster()
    assert run.ret == 0, run.output
    assert {r["check"]: r["outcome"] for r in run.results["checks"]} == {check: "passed" for check in CHECKS}
    assert_granted_by_rbac(api.requests)
    measured = {m["measure"]: m["value"] for r in run.results["checks"] for m in r["measurements"]}
    assert measured["nodes"] == ["node-1", "node-2"]
    assert measured[f"{NS} pods"] == 2  # the finished Job pod and the terminating pod are not judged
    assert measured[f"{NS} warning_events"] == []  # the 5-hour-old BackOff is outside the window
    assert 59 <= measured[f"{NS}/Secret/shop-tls days_left"] <= 60
    assert [subject for subject, _ in measured[f"{NS}/Secret/shop-tls chain_not_after"]] == [
        "CN=shop.example.com", "CN=Shop Test CA"]
    assert KEY_CANARY not in artifacts(run) and base64.b64encode(KEY_CANARY.encode()).decode() not in artifacts(run)


def test_disk_pressure_and_every_other_fault_fail_with_evidence(api, run_cluster):
    api.nodes[1] = node("node-2", DiskPressure=("True", "KubeletHasDiskPressure", "kubelet has disk pressure"))
    api.nodes.append(node("node-3", Ready=("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")))
    evicted, pending = _pod("api-7d4b9c8f6d-ev1ct"), _pod("api-7d4b9c8f6d-p3nd1")
    evicted["status"] = {"phase": "Failed", "reason": "Evicted",
                         "message": "The node was low on resource: ephemeral-storage."}
    pending["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                             "reason": "Unschedulable"}]}
    api.pods += [evicted, pending]
    api.events.append(warning("api-7d4b9c8f6d-p3nd1", "FailedScheduling",
                              "0/3 nodes are available: 1 node(s) had untolerated taint", timedelta(minutes=2), 4))
    api.autoscalers = [autoscaler("api", 10, 10, 10, *[
        condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size", False),
        condition("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate", False),
        condition("ScalingLimited", "True", "TooManyReplicas", "the desired replica count is more than the maximum "
                  "replica count", False)]),
        autoscaler("worker", 2, 3, 10, *[
            condition("AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the target's "
                      "current scale", False),
            condition("ScalingActive", "False", "FailedGetResourceMetric", "the HPA was unable to compute the "
                      "replica count: failed to get cpu utilization", False)])]
    api.budgets = [disruption_budget(0, healthy=2, desired=2)]
    api.claims.append(volume_claim("data-db-1", "Pending"))
    api.certificates = [certificate(-2, ("False", "Expired", "Certificate expired on Sun, 29 Nov 2026 12:00:00 UTC"))]
    api.secret = tls_secret(5)
    run = run_cluster()
    assert run.ret == 1
    message = {r["check"]: r["message"] for r in run.results["checks"]}
    where = "on kubernetes.staging"
    assert message["test_nodes_ready_without_pressure"] == (
        f"nodes_not_ready ({{'node-3': 'Unknown (NodeStatusUnknown: Kubelet stopped posting node status.)'}}) == {{}} "
        f"{where}; nodes_under_pressure ({{'node-2': ['DiskPressure (KubeletHasDiskPressure)']}}) == {{}} {where}")
    assert message["test_namespace_pods_running_and_healthy"] == (
        f"{NS} pods_not_running ({{'api-7d4b9c8f6d-ev1ct': 'Failed (Evicted)', 'api-7d4b9c8f6d-p3nd1': 'Pending'}}) "
        f"== {{}} {where}; {NS} pods_not_ready (['api-7d4b9c8f6d-ev1ct', 'api-7d4b9c8f6d-p3nd1']) == [] {where}")
    assert message["test_namespace_has_no_recent_warning_events"] == (
        f"{NS} warning_events_30m (1) <= 0 {where}: Pod/api-7d4b9c8f6d-p3nd1: FailedScheduling: 0/3 nodes are "
        "available: 1 node(s) had untolerated taint (x4)")
    assert message["test_autoscalers_keep_up_and_can_scale"] == (
        f"{NS}/HorizontalPodAutoscaler/worker current_replicas (2) >= 3 {where}; "
        f"{NS}/HorizontalPodAutoscaler/worker unable_to_scale ({{'ScalingActive': 'FailedGetResourceMetric: the HPA "
        f"was unable to compute the replica count: failed to get cpu utilization'}}) == {{}} {where}")
    at_max = next(m for m in run.record("test_autoscalers_keep_up_and_can_scale")["measurements"]
                  if m["measure"] == f"{NS}/HorizontalPodAutoscaler/api at_max_replicas")
    assert at_max == {"measure": f"{NS}/HorizontalPodAutoscaler/api at_max_replicas", "value": True, "op": "==",
                      "limit": False, "verdict": "warn"}
    assert message["test_disruption_budgets_allow_a_disruption"] == (
        f"{NS}/PodDisruptionBudget/api disruptions_allowed (0) >= 1 {where}: currentHealthy 2, desiredHealthy 2, "
        "expectedPods 2: a node drain would wait")
    assert message["test_volume_claims_bound"] == (
        f"{NS} volume_claims_not_bound ({{'data-db-1': 'Pending'}}) == {{}} {where}")
    cert = message["test_cert_manager_certificates_ready_and_not_expiring"]
    assert cert.startswith(f"{NS}/Certificate/shop-tls ready ('False') == 'True' {where}: Expired: Certificate "
                           "expired on Sun, 29 Nov 2026 12:00:00 UTC; "
                           f"{NS}/Certificate/shop-tls days_left (-2.0) >= 7 ")
    assert message["test_ingress_tls_secrets_not_expiring"] in (
        f"{NS}/Secret/shop-tls days_left ({days}) >= 7 {where} (crit)" for days in ("5.0", "4.9"))


def test_the_warned_autoscaler_at_its_maximum_alone_does_not_gate(api, run_cluster):
    api.autoscalers = [autoscaler("api", 10, 10, 10)]
    run = run_cluster("-k", "autoscalers")
    record = run.record("test_autoscalers_keep_up_and_can_scale")
    assert run.ret == 0 and record["outcome"] == "warned"
    assert record["message"] == (f"{NS}/HorizontalPodAutoscaler/api at_max_replicas (true) == false on "
                                 "kubernetes.staging: desired 10 of maxReplicas 10: more load finds no more "
                                 "replicas (warn)")


def test_missing_objects_are_said_not_passed(api, run_cluster):
    """A TLS secret an Ingress names that does not exist fails; no PDB to judge skips; no cert-manager errors."""
    api.secret, api.budgets, api.certificates = None, [], None
    run = run_cluster("-k", "tls or disruption or cert_manager")
    assert run.record("test_ingress_tls_secrets_not_expiring")["message"] == (
        f"{NS}/Secret/shop-tls tls_crt ('not found') == 'ok' on kubernetes.staging: named by Ingress web")
    assert run.record("test_disruption_budgets_allow_a_disruption")["message"] == (
        f"kubernetes.staging: no PodDisruptionBudget in {NS}")
    cert = run.record("test_cert_manager_certificates_ready_and_not_expiring")
    assert cert["outcome"] == "error" and cert["message"] == (
        "could not measure on kubernetes.staging: cert-manager.io/v1 certificates are not served here "
        "(is cert-manager installed?)")


def _rules(kind: str) -> list[dict]:
    documents = list(yaml.safe_load_all((Path(__file__).parent.parent / "deploy" / "rbac.yaml").read_text()))
    return [rule for document in documents if document["kind"] == kind for rule in document["rules"]]


def test_rbac_allows_nothing_but_reading():
    """No rule of deploy/rbac.yaml allows more than get, list and watch; Secrets are only read by name (get)."""
    assert {verb for kind in ("Role", "ClusterRole") for rule in _rules(kind) for verb in rule["verbs"]} <= {
        "get", "list", "watch"}
    secrets = [rule for rule in _rules("Role") if "secrets" in rule["resources"]]
    assert secrets and all(rule["verbs"] == ["get"] for rule in secrets)


def assert_granted_by_rbac(requests: list[str]) -> None:
    """Every request is granted by deploy/rbac.yaml: namespaced reads by the Role, nodes by the ClusterRole."""

    def granted(kind: str, group: str, resource: str, verb: str) -> bool:
        return any(group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
                   for rule in _rules(kind))

    for request in requests:
        path = request.split()[1].split("?")[0].strip("/").split("/")
        group, rest = ("", path[2:]) if path[0] == "api" else (path[1], path[3:])
        scoped = rest[0] == "namespaces"
        resource = rest[2] if scoped else rest[0]
        verb = "get" if len(rest) > (3 if scoped else 1) else "list"
        assert granted("Role" if scoped else "ClusterRole", group, resource, verb), request
