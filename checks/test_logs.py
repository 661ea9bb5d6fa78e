"""Logs: an error pattern counted over a window (``ERROR|Traceback`` at most N in 1 h), or a line that must be
there since a time (the startup line since the deploy); from a host's file, journald or a command's output,
and from every pod of a Kubernetes workload."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


def _judge(check, result, evidence) -> None:
    name = check.name
    evidence.record(f"{name} source", result.source)
    evidence.record(f"{name} bytes_read", result.bytes_read)
    if result.lookback_s is not None:
        evidence.record(f"{name} window_s", round(result.lookback_s))
    evidence.record(f"{name} matches", result.matches)
    if result.lines_dropped:
        evidence.record(f"{name} lines_too_long_dropped", result.lines_dropped)
    if check.present:
        evidence.expect(f"{name} matching_lines", result.count, ">=", 1, note=f"/{check.pattern}/")
    if check.count is not None:
        evidence.within(f"{name} matching_lines", result.count, check.count)
    if not result.covered:
        evidence.caution(f"{name} window_covered", False, "==", True,
                         f"the last {result.bytes_read} bytes begin at {result.first_time}, inside the window: "
                         f"the count is a lower bound (raise max_bytes)")


@pytest.mark.p1
def test_host_log_pattern_within_limits(host_target, host_log, host, evidence):
    _judge(host_log, host.log(host_log), evidence)


@pytest.mark.p1
def test_pod_log_pattern_within_limits(kubernetes_target, pod_log, kubernetes, evidence):
    _judge(pod_log, kubernetes.pod_logs(pod_log, kubernetes_target.namespace_of(pod_log)), evidence)
