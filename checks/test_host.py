"""Hosts: the runbooks' df, free, uptime, systemctl, ps, ss and certificate checks, via testinfra."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


def _need(target, field: str):
    value = getattr(target, field)
    if not value:
        pytest.skip(f"{target.where} has no {field}")
    return value


@pytest.mark.p1
def test_filesystems_below_usage_limit(host_target, host, evidence):
    for mount, threshold in _need(host_target, "filesystems").items():
        evidence.within(f"{mount} used_pct", host.filesystem_used_pct(mount), threshold)


@pytest.mark.p1
def test_inodes_below_usage_limit(host_target, host, evidence):
    for mount, threshold in _need(host_target, "inodes").items():
        evidence.within(f"{mount} inodes_used_pct", host.inodes_used_pct(mount), threshold)


@pytest.mark.p1
def test_memory_available_above_floor(host_target, host, evidence):
    evidence.within("memory_available_pct", host.memory_available_pct(), _need(host_target, "memory_available_pct"))


@pytest.mark.p1
def test_memory_used_below_limit(host_target, host, evidence):
    evidence.within("memory_used_pct", host.memory_used_pct(), _need(host_target, "memory_used_pct"))


@pytest.mark.p2
def test_load_per_cpu_below_limit(host_target, host, evidence):
    threshold = _need(host_target, "load_per_cpu")
    load, cpus = host.load_per_cpu()
    evidence.record("cpus", cpus)
    evidence.within("load_5m_per_cpu", load, threshold)


@pytest.mark.p0
def test_services_running_and_enabled(host_target, host, evidence):
    services = _need(host_target, "services")
    manager = host.service_manager()
    if manager is None:
        pytest.skip(f"{host_target.where} has no service manager (no systemd, no service command)")
    evidence.record("service_manager", manager)
    states = {name: dict(zip(("running", "enabled"), host.service(name))) for name in services}
    evidence.expect("services_not_running", sorted(n for n, s in states.items() if not s["running"]), "==", [])
    evidence.expect("services_not_enabled", sorted(n for n, s in states.items() if not s["enabled"]), "==", [])


@pytest.mark.p0
def test_processes_present(host_target, host, evidence):
    counts = {name: host.process_count(name) for name in _need(host_target, "processes")}
    evidence.record("process_counts", counts)
    evidence.expect("processes_missing", sorted(n for n, c in counts.items() if c == 0), "==", [])


@pytest.mark.p0
def test_ports_listening(host_target, host, evidence):
    closed = [spec for spec in _need(host_target, "ports") if not host.listening(spec)]
    evidence.expect("ports_not_listening", closed, "==", [])


@pytest.mark.p1
def test_files_present_with_mode_and_owner(host_target, host, evidence):
    wrong = {}
    for path, expected in _need(host_target, "files").items():
        actual = host.file(path)
        if not actual["exists"]:
            wrong[path] = "missing"
            continue
        want = {"directory": expected.directory, "mode": expected.mode and f"{int(expected.mode, 8):04o}",
                "owner": expected.owner, "group": expected.group}
        diff = {k: actual[k] for k, v in want.items() if v is not None and actual[k] != v}
        if diff:
            wrong[path] = diff
    evidence.expect("files_not_as_expected", wrong, "==", {})


@pytest.mark.p2
def test_time_synchronised(host_target, host, evidence):
    if not host_target.time_sync:
        pytest.skip(f"{host_target.where} does not require time sync")
    answer = host.time_synchronised()
    if answer is None:
        pytest.skip(f"{host_target.where}: no time sync status to read (timedatectl needs systemd; no chronyc)")
    source, synchronised, said = answer
    evidence.record("time_sync_source", source)
    evidence.record("time_sync_status", said)
    evidence.expect("time_synchronised", synchronised, "==", True)


@pytest.mark.p1
def test_certificate_files_not_expiring(host_target, host, evidence):
    for path, threshold in _need(host_target, "certificates").items():
        days, subject = host.certificate_days_left(path)
        evidence.record(f"{path} subject", subject)
        evidence.within(f"{path} days_to_expiry", days, threshold)
