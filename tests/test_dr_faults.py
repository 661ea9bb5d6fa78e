"""DR drill faults and refusals, with `run` steps here and over ssh: a step that hangs is stopped at its timeout,
one that exits non-zero stops the drill, Ctrl-C and SIGTERM mid-drill still run the rollback, a failing
rollback is its own gating failure; unsafe or unconfirmed scenarios never start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import read_results
from test_host_checks import sshd  # noqa: F401 - a real OpenSSH server on a loopback port

from opsproof.processes import alive

ROOT = Path(__file__).resolve().parent.parent
CANARY = "dr-canary-s3cr3t-value"


def environment(tmp_path, steps: list[dict], rollback=(), tier: str = "sandbox", **scenario) -> dict:
    """A scenario of `run` steps acting on a TCP target (only so acts_on names something), verified by an
    invariant on the session sandbox's database (milliseconds, where checks would take an inner run)."""
    verify = {"invariants": {"users": {"target": "postgres.main", "sql": "SELECT count(*) FROM users", "min": 1}}}
    return {"tier": tier, "tcp": {"port": {"host": "127.0.0.1", "port": 9, "timeout_s": 1}},
            "postgres": {"main": {"dsn": "${TEST_PG_DSN}", "password": "${TEST_PG_PASSWORD}"}},
            "dr": {"drill": {"acts_on": ["tcp.port"], "steps": steps, "rollback": list(rollback), "rto": "1m",
                             "verify": verify, **scenario}}}


@pytest.fixture(autouse=True)
def database(sandbox, monkeypatch):
    monkeypatch.setenv("TEST_PG_DSN", sandbox.pg_dsn)
    monkeypatch.setenv("TEST_PG_PASSWORD", sandbox.pg_password)


def run_step(name: str, command: str, timeout: str = "10s", **extra) -> dict:
    return {"name": name, "type": "run", "command": command, "timeout": timeout, **extra}


def drill(run) -> dict:
    return run.record("test_dr_drill_completes_every_step", "drill")["drill"]


CONFIRMED = ("--suite", "dr", "--allow-destructive", "--confirm-drill", "drill")


def test_a_hanging_step_is_stopped_at_its_timeout_with_its_whole_process_group(tmp_path, write_env, run_checks):
    pids = tmp_path / "pids"
    steps = [run_step("hang", f"echo $$ > {pids}; sleep 300 & echo $! >> {pids}; echo waiting; wait", "1s")]
    started = time.monotonic()
    run = run_checks(write_env(environment(tmp_path, steps)), *CONFIRMED)
    assert run.ret == 1 and time.monotonic() - started < 30
    step = drill(run)["steps"][0]
    assert (step["name"], step["outcome"], step["exit_code"]) == ("hang", "failed", None)
    assert step["error"] == "no exit within its timeout of 1 s: stopped" and step["output_tail"] == "waiting"
    assert 1.0 <= step["duration_s"] < 5
    assert [pid for pid in map(int, pids.read_text().split()) if alive(pid)] == []  # the shell and its sleep


def test_a_step_that_exits_non_zero_stops_the_drill_with_its_output(tmp_path, write_env, run_checks):
    steps = [run_step("expected_3", "exit 3", expect_exit=3),
             run_step("fails", "echo 'cannot reach db-2' >&2; exit 2"),
             run_step("never", f"touch {tmp_path}/never")]
    run = run_checks(write_env(environment(tmp_path, steps)), *CONFIRMED)
    assert run.ret == 1
    record = drill(run)
    assert [(s["name"], s["outcome"], s["exit_code"]) for s in record["steps"]] == [
        ("expected_3", "passed", 3), ("fails", "failed", 2)]
    assert record["steps"][1]["output_tail"] == "cannot reach db-2" and not (tmp_path / "never").exists()
    assert run.record("test_dr_drill_completes_every_step", "drill")["message"] == (
        "stopped_at ('fails: exit 2, expected 0') == None on dr.drill")


def test_a_failing_rollback_is_its_own_gating_failure_saying_what_is_left(tmp_path, write_env, run_checks):
    steps = [run_step("change", f"touch {tmp_path}/changed")]
    rollback = [run_step("undo", f"rm {tmp_path}/changed"), run_step("restart", "echo 'unit failed' >&2; exit 1"),
                run_step("repoint", f"touch {tmp_path}/repointed")]
    run = run_checks(write_env(environment(tmp_path, steps, rollback)), *CONFIRMED)
    assert run.ret == 1
    record = drill(run)
    assert [(s["name"], s["outcome"]) for s in record["rollback"]] == [("undo", "passed"), ("restart", "failed")]
    assert record["rollback"][1]["output_tail"] == "unit failed" and not (tmp_path / "repointed").exists()
    assert record["cleanup_confirmed"] is False and record["cleanup_left"] == [
        "restart failed: exit 1, expected 0", "not run: repoint"]
    check = run.record("test_dr_rollback_leaves_nothing_undone", "drill")
    assert check["outcome"] == "failed" and check["gating"] is True
    assert check["message"] == (
        "rollback_failed_at ('restart: exit 1, expected 0') == None on dr.drill: left behind: steps done change, "
        "verify; rollback done undo; restart failed: exit 1, expected 0; not run: repoint")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_mid_drill_still_runs_the_rollback_and_the_record_says_interrupted(tmp_path, write_env, sig):
    started, pids = tmp_path / "started", tmp_path / "pids"
    steps = [run_step("outage", f"echo $$ > {pids}; touch {started}; sleep 300", "5m")]
    rollback = [run_step("rollback", f"sleep 1; touch {tmp_path}/rolled-back")]
    env = write_env(environment(tmp_path, steps, rollback))
    run = subprocess.Popen([sys.executable, "-m", "opsproof.cli", "run", "--env", str(env), "--reports-dir",
                            str(tmp_path / "reports"), *CONFIRMED], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert run.poll() is None and time.monotonic() < deadline, run.stdout.read().decode()
        time.sleep(0.05)
    run.send_signal(sig)
    output = run.communicate(timeout=60)[0].decode()
    assert run.returncode == 2, output
    assert (tmp_path / "rolled-back").exists() and not alive(int(pids.read_text()))
    (results,) = (tmp_path / "reports").glob("*/*/results.json")
    written = read_results(results)
    assert written["interrupted"] is True and written["exit_code"] == 2
    record = next(c for c in written["checks"] if c.get("drill"))
    assert record["outcome"] == "failed"
    steps = record["drill"]["steps"]
    assert record["drill"]["outcome"] == "interrupted" and [(s["name"], s["outcome"]) for s in steps] == [
        ("outage", "interrupted")]
    assert [(s["name"], s["outcome"]) for s in record["drill"]["rollback"]] == [("rollback", "passed")]


def test_run_steps_over_ssh_exit_codes_output_timeout_and_secrets_by_stdin(tmp_path, write_env, run_checks,
                                                                           sshd, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DR_DB_PASSWORD", CANARY)
    host = {"db": {**sshd, "timeout_s": 5}}
    steps = [run_step("remote", f"echo on $(hostname); echo password=$DB_PASSWORD; ps -eo args > {tmp_path}/ps; "
                                "exit 4", host="host.db", expect_exit=4, env={"DB_PASSWORD": "${DR_DB_PASSWORD}"}),
             run_step("remote_hang", "echo started; sleep 300", "2s", host="host.db")]
    env = environment(tmp_path, steps, acts_on=["tcp.port", "host.db"])
    env["host"] = host
    started = time.monotonic()
    run = run_checks(write_env(env), *CONFIRMED)
    assert run.ret == 1 and time.monotonic() - started < 40
    remote, hang = drill(run)["steps"]
    assert (remote["outcome"], remote["exit_code"], remote["target"]) == ("passed", 4, "host.db")
    assert remote["output_tail"].splitlines()[1] == "password=***"  # it arrived, and was redacted
    assert remote["detail"].startswith("exit 4 after ") and remote["detail"].endswith(" s on host.db")
    assert CANARY not in (tmp_path / "ps").read_text()  # no process's arguments held it on the host
    assert (hang["outcome"], hang["error"]) == ("failed", "no exit within its timeout of 2 s: stopped")
    assert hang["output_tail"] == "started" and hang["duration_s"] < 8
    for name in ("results.json", "junit.xml", "report.html"):
        assert CANARY not in (run.run_dir / name).read_text()


def test_an_unreachable_host_fails_its_step_within_the_hosts_timeout(tmp_path, write_env, run_checks,
                                                                     refused_port):
    env = environment(tmp_path, [run_step("remote", "true", "1m", host="host.gone")], acts_on=["tcp.port", "host.gone"])
    env["host"] = {"gone": {"host": f"ssh://root@127.0.0.1:{refused_port}", "timeout_s": 2}}
    run = run_checks(write_env(env), *CONFIRMED)
    step = drill(run)["steps"][0]
    assert step["outcome"] == "failed" and step["error"].startswith("ssh host.gone: ")
    assert "Connection refused" in step["error"] and step["exit_code"] == 255 and step["duration_s"] < 10


def test_a_recovery_that_fails_its_checks_and_invariants_is_not_verified_and_has_no_rto(tmp_path, write_env,
                                                                                        run_checks):
    verify = {"checks": ["test_tcp_*"], "targets": ["tcp.port"], "invariants": {
        "users": {"target": "postgres.main", "sql": "SELECT count(*) FROM users", "min": 1_000_000}}}
    run = run_checks(write_env(environment(tmp_path, [run_step("change", "true")], verify=verify)), *CONFIRMED)
    assert run.ret == 1
    record = drill(run)
    assert (record["failed_step"], record["error"]) == ("verify", "not verified: failed_checks, invariant.users")
    assert record["rto_achieved_s"] is None
    check = run.record("test_dr_recovered_systems_pass_verification", "drill")
    assert check["outcome"] == "failed" and check["message"] == (
        "failed_checks ({'test_tcp_port_accepts_connections[port]': \"port_state ('refused') == 'open' on tcp.port\"})"
        " == {} on dr.drill; invariant.users (500) >= 1000000 on dr.drill")
    # the inner checks ran inside the drill's own run, which holds the environment's lock (an inner lock would
    # have been refused, exit 3, not judged) and records the one history line; the inner run adds none
    (history,) = (tmp_path / "reports").glob("*/history.jsonl")
    assert len(history.read_text().splitlines()) == 1


def test_wait_healthy_reruns_the_targets_real_checks_until_they_pass(tmp_path, write_env, run_checks, sandbox,
                                                                       api_faults):
    api_faults(unready="migrations", unready_requests=1)  # the first readiness answer only: the next run passes
    env = environment(tmp_path, [{"name": "ready", "type": "wait_healthy", "targets": ["http.api"], "suite": "smoke",
                                  "every": "0.2s", "timeout": "1m"}])
    env["http"] = {"api": {"url": sandbox.api_url, "timeout_s": 3, "ready": {"path": "/ready",
                                                                              "components": ["migrations"]}}}
    env["history_dir"] = str(tmp_path / "history")
    (tmp_path / "history").mkdir()  # a history_dir must exist at load
    run = run_checks(write_env(env), *CONFIRMED)
    assert run.ret == 0, run.output
    step = drill(run)["steps"][0]
    assert step["outcome"] == "passed" and step["detail"].endswith(" (2 runs)"), step
    assert step["detail"].startswith("smoke checks of http.api passed after ")
    # the inner runs wrote no history and no reports of their own: only this run's record is there
    assert len((tmp_path / "history" / "history.jsonl").read_text().splitlines()) == 1


# --- refused before anything runs ----------------------------------------------------------------------

def validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsproof.cli", "validate", *map(str, paths)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("change, problem", [
    (lambda d: d["dr"]["drill"]["steps"][0].update(target="tcp.other"),
     "dr.drill: steps.0: acts on tcp.other, which is not in acts_on ['tcp.port']"),
    (lambda d: d["dr"]["drill"]["steps"][0].pop("timeout"),
     "dr.drill.steps.0: no timeout: every step needs one (a duration like 30s or 5m)"),
    (lambda d: d["dr"]["drill"]["steps"].append({"name": "promote", "type": "promote", "target": "tcp.port",
                                                 "timeout": "1m"}),
     "dr.drill.steps.1.target: tcp.port is a tcp target; it must be postgres or mysql"),
    (lambda d: d["dr"]["drill"]["steps"][0].update(host="host.nowhere"),
     "dr.drill: steps.0: acts on host.nowhere, which is not in acts_on ['tcp.port']"),
    (lambda d: d["dr"]["drill"].update(acts_on=["tcp.port", "redis.cache"]),
     "dr.drill.acts_on.1: redis.cache is not a target in this environment"),
    (lambda d: d["dr"]["drill"]["steps"][0].update(command=None, target="tcp.port"),
     "dr.drill.steps.0: a run step needs command"),
    (lambda d: d["dr"]["drill"]["steps"].append({"name": "wait", "type": "wait_healthy", "targets": ["dr.drill"],
                                                 "timeout": "1m"}),
     "dr.drill.steps.1.targets.0: dr.drill is a dr target; it must be http or postgres or mysql or redis or tcp or "
     "host"),
    (lambda d: d["dr"]["drill"].update(game_day=True),
     "dr.drill: game_day: true needs an approver (who approved the game day)"),
    (lambda d: d["dr"]["drill"].update(rpo="1h"),
     "dr.drill: rpo and rpo_measure go together: the target and how it is measured from data"),
    (lambda d: d["dr"]["drill"].update(rpo="0s", rpo_measure={"marker": {"write": "postgres.main",
                                                                         "read": "postgres.main"}}),
     "dr.drill: rpo_measure.marker.write: writes to postgres.main, which is not in acts_on ['tcp.port']"),
    (lambda d: d["dr"]["drill"]["steps"][0].update(timeout="soon"),
     "dr.drill.steps.0.timeout: 'soon' is not a duration like 24h, 30m, 1h30m or 7d"),
    (lambda d: d["dr"].update(drill={"sandbox_dir": "/x", "steps": ["stop_api"], "rto_s": 120, "rpo_s": 60}),
     "dr.drill: this is the sandbox-only scenario of earlier opsproof: steps are now {name, type, timeout, ...} "
     "(stop_api is {name: stop_api, type: sandbox, action: stop_api, target: http.api, timeout: 1m}), rto_s/rpo_s "
     "are rto/rpo durations, verify is {targets, invariants}; see README \"DR drills\""),
])
def test_an_unsafe_or_malformed_scenario_is_refused_when_the_file_loads(tmp_path, write_env, change, problem):
    from opsproof.environment import load_environment
    from opsproof.errors import ConfigError

    env = environment(tmp_path, [run_step("change", f"touch {tmp_path}/ran")])
    change(env)
    with pytest.raises(ConfigError) as refused:
        load_environment(write_env(env))
    assert str(refused.value) == f"{refused.value.file}: {problem}"


def test_production_without_a_game_day_is_refused_in_one_line_and_exit_4(tmp_path, write_env, run_checks):
    path = write_env(environment(tmp_path, [run_step("change", f"touch {tmp_path}/ran")], tier="production"))
    problem = ("dr.drill.game_day: environment under-test is tier production: a DR drill runs there only on a "
               "declared game day (game_day: true, approver: who approved it)")
    result = validate(path)
    assert result.returncode == 4 and result.stderr.splitlines() == [f"opsproof: {path}: {problem}"]
    run = run_checks(path, *CONFIRMED)
    assert run.ret == 4 and run.results is None and not (tmp_path / "ran").exists()


def test_a_production_game_day_runs_with_its_approver_and_the_record_says_so(tmp_path, write_env, run_checks):
    env = environment(tmp_path, [run_step("change", f"touch {tmp_path}/ran")], tier="production", game_day=True,
                      approver="Head of Operations (CAB-2231)")
    run = run_checks(write_env(env), *CONFIRMED)
    record = drill(run)
    assert (tmp_path / "ran").exists() and record["game_day"] is True
    assert record["approver"] == "Head of Operations (CAB-2231)"
    assert record["confirmed_by"].endswith(
        " (--allow-destructive --confirm-drill drill; game day approved by Head of Operations (CAB-2231))")


def test_confirming_a_scenario_the_environment_lacks_is_a_usage_error(tmp_path, write_env, run_checks):
    run = run_checks(write_env(environment(tmp_path, [run_step("change", f"touch {tmp_path}/ran")])),
                     "--suite", "dr", "--allow-destructive", "--confirm-drill", "drill-typo")
    assert run.ret == 4 and run.results is None and not (tmp_path / "ran").exists()
    assert "--confirm-drill drill-typo: environment under-test has no DR scenario drill-typo (it has: drill)" in \
        run.output


def test_the_seed_systems_example_scenarios_validate(monkeypatch):
    """PR-023's Runbook 12 runs in tests/test_dr_drill.py; the others name hosts this machine has not."""
    for name in ("EVENTCHAIN_API_TOKEN", "EVENTCHAIN_PG_PASSWORD", "EVENTCHAIN_DR_OPERATOR_PASSWORD",
                 "FINAEGIS_MONITOR_PASSWORD", "FINAEGIS_DR_OPERATOR_PASSWORD", "FINAEGIS_BYPASS_TOKEN",
                 "BUNTY_PG_PASSWORD"):
        monkeypatch.setenv(name, f"placeholder-{name.lower()}")
    examples = [ROOT / "environments" / "examples" / f"{name}.yaml"
                for name in ("eventchain-dr", "finaegis-dr", "bunty-quarterly-dr")]
    result = validate(*examples)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 3, result.stderr
