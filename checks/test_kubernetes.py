"""Kubernetes: the rollout gate (kubectl's verdict, the expected version) and the health of what it rolled out."""

import pytest

from opsproof.kubernetes import pods as judge
from opsproof.thresholds import Ceiling

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]
NONE = Ceiling(warn=0)  # hygiene findings: any is a warning, never a failure


def _workloads(target):
    if not target.workloads:
        pytest.skip(f"{target.where} has no workloads")
    return [(target.namespace_of(w), w) for w in target.workloads]


def _pods(kubernetes, namespace, workload):
    return kubernetes.pods(workload.kind, namespace, workload.name)


@pytest.mark.p0
def test_workloads_rolled_out(kubernetes_target, kubernetes, evidence):
    keys = [(namespace, w.kind, w.name) for namespace, w in _workloads(kubernetes_target)]
    verdicts = kubernetes.rollouts(keys, kubernetes_target.rollout_timeout_s, kubernetes_target.poll_interval_s)
    for (namespace, kind, name), (message, _) in verdicts.items():
        evidence.record(f"{namespace}/{kind}/{name} rollout_status", message)
    for (namespace, kind, name), (message, done) in verdicts.items():
        evidence.expect(f"{namespace}/{kind}/{name} rollout", "complete" if done else message, "==", "complete")


@pytest.mark.p0
def test_workloads_run_expected_version(kubernetes_target, kubernetes, evidence, expected):
    checked = 0
    for namespace, w in _workloads(kubernetes_target):
        expected_tag = expected.workload_version(namespace, w)
        if expected_tag is None:
            continue
        tags = judge.running_tags(_pods(kubernetes, namespace, w), w.container)
        wrong = {container: tag for container, tag in tags.items() if tag != expected_tag}
        evidence.record(f"{namespace}/{w.kind}/{w.name} image_tags", sorted(set(map(str, tags.values()))))
        evidence.expect(f"{namespace}/{w.kind}/{w.name} containers_not_on_{expected_tag}", wrong, "==", {})
        evidence.expect(f"{namespace}/{w.kind}/{w.name} pods", len(tags), ">=", 1)
        checked += 1
    if not checked:
        pytest.skip(f"{kubernetes_target.where} expects no version (set a workload's version, or pass "
                    "--expect-version NAME=TAG for a workload or release group)")


@pytest.mark.p0
def test_pods_ready(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        evidence.expect(f"{namespace}/{w.kind}/{w.name} pods_not_ready",
                        judge.not_ready(_pods(kubernetes, namespace, w)), "==", [])


@pytest.mark.p1
def test_pods_running_phase(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        evidence.expect(f"{namespace}/{w.kind}/{w.name} pods_not_running",
                        judge.bad_phases(_pods(kubernetes, namespace, w)), "==", {})


@pytest.mark.p1
def test_containers_not_waiting_on_errors(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        evidence.expect(f"{namespace}/{w.kind}/{w.name} containers_waiting",
                        judge.waiting(_pods(kubernetes, namespace, w)), "==", {})


@pytest.mark.p1
def test_containers_not_oom_killed(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        evidence.expect(f"{namespace}/{w.kind}/{w.name} containers_oom_killed",
                        judge.oom_killed(_pods(kubernetes, namespace, w)), "==", {})


@pytest.mark.p1
def test_restarts_within_limit(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        counts = judge.restarts(_pods(kubernetes, namespace, w))
        evidence.record(f"{namespace}/{w.kind}/{w.name} restarts", counts)
        evidence.expect(f"{namespace}/{w.kind}/{w.name} max_restarts", max(counts.values(), default=0), "<=",
                        kubernetes_target.restart_limit)


@pytest.mark.p2
def test_no_recent_warning_events(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        names = {w.name} | {(p.get("metadata") or {}).get("name") for p in _pods(kubernetes, namespace, w)}
        warnings = judge.recent_warnings(kubernetes.warning_events(namespace), names, (f"{w.name}-",),
                                         kubernetes_target.events_window_min)
        evidence.expect(f"{namespace}/{w.kind}/{w.name} warning_events_{kubernetes_target.events_window_min:g}m",
                        warnings, "==", [])


@pytest.mark.p0
def test_services_have_ready_endpoints(kubernetes_target, kubernetes, evidence):
    if not kubernetes_target.services:
        pytest.skip(f"{kubernetes_target.where} has no services")
    for service in kubernetes_target.services:
        namespace = kubernetes_target.namespace_of(service)
        evidence.expect(f"{namespace}/Service/{service.name} ready_endpoints",
                        kubernetes.ready_endpoints(namespace, service.name), ">=", service.min_ready)


@pytest.mark.p1
def test_cronjobs_succeeded_recently(kubernetes_target, kubernetes, evidence):
    if not kubernetes_target.cronjobs:
        pytest.skip(f"{kubernetes_target.where} has no cronjobs")
    for cronjob in kubernetes_target.cronjobs:
        namespace = kubernetes_target.namespace_of(cronjob)
        status = kubernetes.cronjob(namespace, cronjob.name).get("status") or {}
        last = judge.parse_time(status.get("lastSuccessfulTime"))
        age_h = (kubernetes.now() - last).total_seconds() / 3600 if last else float("inf")
        evidence.record(f"{namespace}/CronJob/{cronjob.name} last_successful_time", status.get("lastSuccessfulTime"))
        evidence.expect(f"{namespace}/CronJob/{cronjob.name} last_success_age_h", round(age_h, 1), "<=",
                        cronjob.max_age_h)


@pytest.mark.p3
def test_workloads_follow_configuration_hygiene(kubernetes_target, kubernetes, evidence):
    for namespace, w in _workloads(kubernetes_target):
        spec = kubernetes.workload(w.kind, namespace, w.name)
        where = f"{namespace}/{w.kind}/{w.name}"
        for finding, found in (("unpinned_images", judge.unpinned_images(spec)),
                               ("missing_probes", judge.missing_probes(spec)),
                               ("missing_resources", judge.missing_resources(spec))):
            evidence.record(f"{where} {finding}", found)
            evidence.within(f"{where} {finding}", len(found), NONE)
