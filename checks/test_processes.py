"""Processes and resources: CPU busy %, the top processes by memory and CPU, named processes (count, RSS,
CPU %) and PM2's apps (online, restarts, memory), as ``top``, ``ps`` and ``pm2 status`` show them."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p2
def test_cpu_used_below_limit(host_target, host, evidence):
    if host_target.cpu_used_pct is None:
        pytest.skip(f"{host_target.where} sets no cpu_used_pct")
    sample = host.sample(host_target.cpu_sample_s)
    evidence.record("cpus", sample.cpus)
    evidence.record("sample_window_s", sample.window_s)
    evidence.record("top_by_cpu", sample.top(host_target.top_processes, "cpu_pct"))
    evidence.record("top_by_memory", sample.top(host_target.top_processes, "rss_bytes"))
    evidence.judge("cpu_used_pct", sample.cpu_used_pct, host_target.cpu_used_pct)


@pytest.mark.p1
def test_process_running_within_limits(host_target, host_process, host, evidence):
    check, name = host_process, host_process.name
    found = host.sample(host_target.cpu_sample_s).find(check.comm, check.pattern)
    evidence.record(f"{name} pids", [p.pid for p in found][:20])
    evidence.require(f"{name} count", len(found), ">=", check.min_count)
    if check.max_count is not None:
        evidence.expect(f"{name} count", len(found), "<=", check.max_count)
    evidence.within(f"{name} rss_mb", round(sum(p.rss_bytes for p in found) / 2**20, 1), check.rss_mb)
    evidence.within(f"{name} cpu_pct", round(sum(p.cpu_pct for p in found), 1), check.cpu_pct)


def _pm2(host_target, host, evidence):
    """The apps judged: those named, else every app; none at all fails (no daemon, or it runs nothing)."""
    if host_target.pm2 is None:
        pytest.skip(f"{host_target.where} has no pm2")
    pm2 = host_target.pm2
    apps = host.pm2_apps(pm2)
    evidence.require("pm2_daemon", "running" if apps is not None else "not running", "==", "running",
                     note=f"no PM2 daemon for PM2_HOME {pm2.home or '~/.pm2'} (none was started)")
    return pm2, [app for app in apps if not pm2.apps or app["name"] in pm2.apps]


@pytest.mark.p0
def test_pm2_apps_online(host_target, host, evidence):
    pm2, apps = _pm2(host_target, host, evidence)
    evidence.record("pm2_apps", apps)
    status = {app["name"]: app["status"] for app in apps}
    wanted = pm2.apps or sorted(status)
    evidence.require("pm2_apps", len(wanted), ">=", 1, note="the PM2 daemon runs no app")
    evidence.expect("pm2_apps_not_online", {name: status.get(name, "not in pm2 jlist") for name in wanted
                                            if status.get(name) != "online"}, "==", {})


@pytest.mark.p1
def test_pm2_restarts_within_limit(host_target, host, evidence):
    pm2, apps = _pm2(host_target, host, evidence)
    evidence.require("pm2_apps", len(apps), ">=", 1, note="none of the apps named runs under PM2")
    for app in apps:
        evidence.judge(f"{app['name']} restarts", app["restarts"], pm2.restarts)


@pytest.mark.p1
def test_pm2_memory_within_limit(host_target, host, evidence):
    pm2, apps = _pm2(host_target, host, evidence)
    evidence.require("pm2_apps", len(apps), ">=", 1, note="none of the apps named runs under PM2")
    for app in apps:
        evidence.judge(f"{app['name']} memory_mb", app["memory_mb"], pm2.memory_mb)
