"""Kubernetes cluster: nodes, every pod and Warning event of a namespace, autoscalers, disruption budgets,
volume claims, cert-manager Certificates and Ingress TLS secrets, read through the API only."""

import pytest

from opsproof.kubernetes import health
from opsproof.kubernetes import pods as judge

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


def _needs(target, field: str):
    scan = getattr(target, field)
    if scan is None:
        pytest.skip(f"{target.where} sets no {field}")
    return scan


def _found_some(target, count: int, what: str, namespaces: list[str]) -> None:
    """Nothing of that kind to judge is not a pass: the check skips and says so."""
    if not count:
        pytest.skip(f"{target.where}: no {what} in {', '.join(namespaces)}")


@pytest.mark.p1
def test_nodes_ready_without_pressure(kubernetes_target, kubernetes, evidence):
    scan = _needs(kubernetes_target, "nodes")
    nodes = kubernetes.nodes(scan.label_selector)
    not_ready, pressure, cordoned = health.node_problems(nodes)
    evidence.record("nodes", sorted(health.name_of(node) for node in nodes))
    evidence.expect("nodes_not_ready", not_ready, "==", {})
    evidence.expect("nodes_under_pressure", pressure, "==", {})
    evidence.expect("nodes_ready", len(nodes) - len(not_ready), ">=", scan.min_ready)
    evidence.caution("nodes_cordoned", cordoned, "==", [], "unschedulable: no new pod lands there")


@pytest.mark.p1
def test_namespace_pods_running_and_healthy(kubernetes_target, kubernetes, evidence):
    namespaces = kubernetes_target.namespaces_of(_needs(kubernetes_target, "namespace_pods"))
    for namespace in namespaces:
        pods = health.settled(kubernetes.namespace_pods(namespace))
        evidence.record(f"{namespace} pods", len(pods))
        unfinished = [p for p in pods if (p.get("status") or {}).get("phase") != "Succeeded"]
        evidence.expect(f"{namespace} pods_not_running", health.not_running(pods), "==", {})
        evidence.expect(f"{namespace} pods_not_ready", judge.not_ready(unfinished), "==", [])
        evidence.expect(f"{namespace} containers_waiting", judge.waiting(pods), "==", {})
        evidence.expect(f"{namespace} containers_oom_killed", judge.oom_killed(pods), "==", {})
        evidence.expect(f"{namespace} max_restarts", max(judge.restarts(pods).values(), default=0), "<=",
                        kubernetes_target.restart_limit)


@pytest.mark.p2
def test_namespace_has_no_recent_warning_events(kubernetes_target, kubernetes, evidence):
    scan = _needs(kubernetes_target, "namespace_events")
    for namespace in kubernetes_target.namespaces_of(scan):
        found = health.recent_warnings(kubernetes.warning_events(namespace), scan.window, kubernetes.now(),
                                       scan.ignore_reasons)
        evidence.record(f"{namespace} warning_events", found)
        evidence.expect(f"{namespace} warning_events_{health.span(scan.window)}", len(found), "<=", scan.max,
                        note="; ".join(found[:5]))


@pytest.mark.p1
def test_autoscalers_keep_up_and_can_scale(kubernetes_target, kubernetes, evidence):
    namespaces = kubernetes_target.namespaces_of(_needs(kubernetes_target, "autoscalers"))
    found = [(namespace, hpa) for namespace in namespaces for hpa in kubernetes.autoscalers(namespace)]
    _found_some(kubernetes_target, len(found), "HorizontalPodAutoscaler", namespaces)
    for namespace, hpa in found:
        state, where = health.autoscaler(hpa), f"{namespace}/HorizontalPodAutoscaler/{health.name_of(hpa)}"
        evidence.expect(f"{where} current_replicas", state.current, ">=", state.desired)
        evidence.expect(f"{where} unable_to_scale", state.unable, "==", {})
        evidence.caution(f"{where} at_max_replicas", state.at_max, "==", False,
                         f"desired {state.desired} of maxReplicas {state.max_replicas}"
                         f"{f' (ScalingLimited: {state.limited})' if state.limited else ''}: more load finds no "
                         "more replicas")


@pytest.mark.p2
def test_disruption_budgets_allow_a_disruption(kubernetes_target, kubernetes, evidence):
    namespaces = kubernetes_target.namespaces_of(_needs(kubernetes_target, "disruption_budgets"))
    found = [(namespace, pdb) for namespace in namespaces for pdb in kubernetes.disruption_budgets(namespace)]
    _found_some(kubernetes_target, len(found), "PodDisruptionBudget", namespaces)
    for namespace, pdb in found:
        status = pdb.get("status") or {}
        evidence.expect(f"{namespace}/PodDisruptionBudget/{health.name_of(pdb)} disruptions_allowed",
                        int(status.get("disruptionsAllowed") or 0), ">=", 1,
                        note=f"currentHealthy {status.get('currentHealthy')}, desiredHealthy "
                             f"{status.get('desiredHealthy')}, expectedPods {status.get('expectedPods')}: a node "
                             "drain would wait")


@pytest.mark.p1
def test_volume_claims_bound(kubernetes_target, kubernetes, evidence):
    namespaces = kubernetes_target.namespaces_of(_needs(kubernetes_target, "volume_claims"))
    claims = {namespace: kubernetes.volume_claims(namespace) for namespace in namespaces}
    _found_some(kubernetes_target, sum(map(len, claims.values())), "PersistentVolumeClaim", namespaces)
    for namespace, found in claims.items():
        evidence.record(f"{namespace} volume_claims", len(found))
        evidence.expect(f"{namespace} volume_claims_not_bound", health.not_bound(found), "==", {})


@pytest.mark.p1
def test_cert_manager_certificates_ready_and_not_expiring(kubernetes_target, kubernetes, evidence):
    scan = _needs(kubernetes_target, "certificates")
    namespaces = kubernetes_target.namespaces_of(scan)
    found = [(namespace, cert) for namespace in namespaces for cert in kubernetes.certificates(namespace)]
    _found_some(kubernetes_target, len(found), "cert-manager Certificate", namespaces)
    for namespace, certificate in found:
        where, status = f"{namespace}/Certificate/{health.name_of(certificate)}", certificate.get("status") or {}
        ready, why = health.certificate_ready(certificate)
        evidence.expect(f"{where} ready", ready, "==", "True", note=why)
        days_left = health.days_until(status.get("notAfter"), kubernetes.now())
        if evidence.expect(f"{where} not_after", status.get("notAfter"), "!=", None, note="never issued"):
            evidence.within(f"{where} days_left", days_left, scan.days_left)


@pytest.mark.p1
def test_ingress_tls_secrets_not_expiring(kubernetes_target, kubernetes, evidence):
    scan = _needs(kubernetes_target, "ingress_tls")
    namespaces = kubernetes_target.namespaces_of(scan)
    secrets: dict[tuple[str, str], list[str]] = {}  # (namespace, secret) -> the Ingresses naming it
    for namespace in namespaces:
        for ingress in kubernetes.ingresses(namespace):
            for tls in (ingress.get("spec") or {}).get("tls") or []:
                if tls.get("secretName"):  # without one, TLS is routed by SNI alone: nothing to read
                    secrets.setdefault((namespace, tls["secretName"]), []).append(health.name_of(ingress))
    _found_some(kubernetes_target, len(secrets), "Ingress naming a TLS secret", namespaces)
    now = kubernetes.now()
    for (namespace, name), ingresses in secrets.items():
        where = f"{namespace}/Secret/{name}"
        expiries, problem = kubernetes.tls_secret_expiries(namespace, name)
        if evidence.expect(f"{where} tls_crt", problem, "==", "ok", note=f"named by Ingress {', '.join(ingresses)}"):
            evidence.record(f"{where} chain_not_after", [[subject, moment.isoformat()] for subject, moment in expiries])
            evidence.within(f"{where} days_left", round((expiries[0][1] - now).total_seconds() / 86400, 1),
                            scan.days_left)
