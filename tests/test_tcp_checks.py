"""TCP targets on real loopback sockets: open, refused, a full backlog that never answers, an unknown name."""

from __future__ import annotations

import socket

import pytest
import yaml

from conftest import ChecksRun, ROOT

CHECK = "test_tcp_port_accepts_connections"


@pytest.fixture
def run_tcp(pytester, tmp_path, monkeypatch):
    """Run checks/test_tcp.py against ``tcp:`` targets; no sandbox needed."""
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)

    def run(targets: dict) -> ChecksRun:
        env_path = tmp_path / "tcp.yaml"
        env_path.write_text(yaml.safe_dump({"name": "tcp", "tier": "production", "tcp": targets}))
        result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                              str(ROOT / "checks" / "test_tcp.py"), "--env", str(env_path),
                                              "--reports-dir", str(tmp_path / "reports"))
        return ChecksRun(result, tmp_path / "reports")

    return run


@pytest.fixture
def listening_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def full_backlog_port():
    """A listener whose accept queue is full: the kernel drops further SYNs, so a connect never completes."""
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued.connect(listener.getsockname())
        yield listener.getsockname()[1]


def test_open_port_passes_and_records_the_connect_time(run_tcp, listening_port):
    run = run_tcp({"gateway": {"host": "127.0.0.1", "port": listening_port, "connect_ms": {"warn": 500, "crit": 2000}}})
    record = run.record(CHECK)
    assert run.ret == 0 and record["outcome"] == "passed" and record["where"] == "tcp.gateway"
    state, connect = record["measurements"]
    assert state == {"measure": "port_state", "value": "open", "op": "==", "limit": "open", "verdict": "ok"}
    assert connect["measure"] == "connect_ms" and 0 <= connect["value"] < 500 and connect["verdict"] == "ok"


def test_refused_port_fails_with_its_state(run_tcp, refused_port):
    run = run_tcp({"gateway": {"host": "127.0.0.1", "port": refused_port}})
    record = run.record(CHECK)
    assert run.ret == 1 and record["outcome"] == "failed" and record["gating"]
    assert record["message"] == "port_state ('refused') == 'open' on tcp.gateway"


def test_port_that_never_answers_fails_within_its_timeout(run_tcp, full_backlog_port):
    run = run_tcp({"broker": {"host": "127.0.0.1", "port": full_backlog_port, "timeout_s": 1}})
    record = run.record(CHECK)
    assert record["message"] == "port_state ('timeout') == 'open' on tcp.broker"
    assert 0.9 < record["duration_s"] < 3


def test_unknown_name_fails_as_unresolved(run_tcp):
    run = run_tcp({"relay": {"host": "smtp.opsproof.invalid", "port": 25, "timeout_s": 2}})
    assert run.record(CHECK)["message"] == "port_state ('unresolved') == 'open' on tcp.relay"


def test_slow_connect_past_crit_fails(run_tcp, listening_port):
    run = run_tcp({"gateway": {"host": "127.0.0.1", "port": listening_port, "connect_ms": {"crit": 0}}})
    assert run.record(CHECK)["message"].endswith(") <= 0 on tcp.gateway (crit)")


def test_a_port_outside_1_to_65535_is_refused_when_the_file_loads(tmp_path):
    from opsproof.environment import load_environment
    from opsproof.errors import ConfigError

    path = tmp_path / "tcp.yaml"
    path.write_text(yaml.safe_dump({"tier": "staging", "tcp": {"gateway": {"host": "127.0.0.1", "port": 70000}}}))
    with pytest.raises(ConfigError, match=r"tcp\.gateway\.port: Input should be less than 65536"):
        load_environment(path, {})


def test_an_address_connects_without_a_lookup_thread_and_a_name_is_still_looked_up(listening_port, monkeypatch):
    """A thread per check cost about 0.5 ms: an address (``127.0.0.1``, ``::1``) needs no lookup; a name does."""
    import threading

    from opsproof.tcp import TcpProbe

    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self), real_start(self))[1])
    state, connect_ms = TcpProbe("127.0.0.1", listening_port, timeout_s=3).connect()
    assert (state, started) == ("open", []) and connect_ms > 0
    assert TcpProbe("localhost", listening_port, timeout_s=3).connect()[0] == "open"
    assert len(started) == 1  # the name went to getaddrinfo on its thread, under the timeout
    assert TcpProbe("no-such-host.invalid", listening_port, timeout_s=3).connect() == ("unresolved", None)
