"""Alerts from real runs: a real Alertmanager raises, keeps and resolves them; a webhook gets chat text;
a receiver that hangs costs its bounds and never the verdict."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from alertmanager import alertmanager  # noqa: F401 - the module's real Alertmanager

from conftest import ROOT, ChecksRun, read_results
from opsproof.processes import free_port

CHECK = "test_tcp_port_accepts_connections[gateway]"


class Port:
    """A loopback port that refuses connections until ``open()`` (the check fails, then passes)."""

    def __init__(self):
        self.number = free_port()
        self._listener: socket.socket | None = None

    def open(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.number))
        self._listener.listen(8)

    def close(self) -> None:
        if self._listener:
            self._listener.close()
            self._listener = None


@pytest.fixture
def gateway():
    port = Port()
    yield port
    port.close()


@pytest.fixture
def run_alerting(pytester, tmp_path, monkeypatch):
    """Run checks/test_tcp.py (suite nightly) against one ``gateway`` target with ``notify``; reports and the
    alert state stay in tmp_path across the test's runs, as they do across nightly runs."""
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)

    def run(name: str, port: Port, notify: dict, *args: str) -> ChecksRun:
        env_path = tmp_path / f"{name}.yaml"
        env_path.write_text(yaml.safe_dump({"name": name, "tier": "staging", "notify": notify,
                                            "tcp": {"gateway": {"host": "127.0.0.1", "port": port.number}}}))
        result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                              str(ROOT / "checks" / "test_tcp.py"), "--env", str(env_path),
                                              "--reports-dir", str(tmp_path / "reports"), "--suite", "nightly", *args)
        return ChecksRun(result, tmp_path / "reports")

    return run


def deliveries(run: ChecksRun, channel: str) -> list[dict]:
    return [d for d in run.results["deliveries"] if d["channel"] == channel]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_failing_run_raises_the_alert_with_its_labels_and_evidence(run_alerting, gateway, alertmanager):
    run = run_alerting("am-raise", gateway, {"alertmanager": {"am": {"url": alertmanager.url}}, "repeat_after": "1h"})
    assert run.ret == 1
    alert, = alertmanager.alerts(environment="am-raise")
    assert alert["labels"] == {"alertname": "OpsproofCheckFailed", "environment": "am-raise", "suite": "nightly",
                               "check": CHECK, "target": "tcp.gateway", "severity": "p1"}
    assert alert["annotations"]["evidence"] == "port_state ('refused') == 'open' on tcp.gateway"
    assert alert["annotations"]["report"] == str(run.run_dir / "report.html")
    assert alert["status"]["state"] == "active"
    # alive for twice repeat_after, far past Alertmanager's resolve_timeout (5m): until the reminder renews it
    assert timedelta(hours=1, minutes=59) < when(alert["endsAt"]) - datetime.now(timezone.utc) <= timedelta(hours=2)
    sent, = deliveries(run, "alertmanager")
    assert sent["outcome"] == "sent" and sent["firing"] == 1 and sent["attempts"] == 1
    assert sent["destination"] == alertmanager.url
    assert f"alerts       alertmanager am ({alertmanager.url}): sent 1 firing (1 attempt, " in run.output


def test_passing_run_resolves_the_alert(run_alerting, gateway, alertmanager, tmp_path):
    notify = {"alertmanager": {"am": {"url": alertmanager.url}}}
    assert run_alerting("am-resolve", gateway, notify).ret == 1
    assert len(alertmanager.alerts(environment="am-resolve")) == 1
    gateway.open()
    run = run_alerting("am-resolve", gateway, notify)
    assert run.ret == 0
    assert alertmanager.alerts(environment="am-resolve") == []  # resolved alerts leave GET /api/v2/alerts
    sent, = deliveries(run, "alertmanager")
    assert (sent["outcome"], sent["resolved"], sent["firing"]) == ("sent", 1, 0)
    state = json.loads((tmp_path / "reports" / "am-resolve" / "notify-nightly.json").read_text())
    assert state["alerts"] == {}  # resolved everywhere: nothing left to remember
    assert deliveries(run_alerting("am-resolve", gateway, notify), "alertmanager")[0]["outcome"] == "nothing_to_send"


def test_failure_that_persists_is_not_sent_again_before_repeat_after(run_alerting, gateway, alertmanager):
    notify = {"alertmanager": {"am": {"url": alertmanager.url}}, "repeat_after": "1h"}
    run_alerting("am-repeat", gateway, notify)
    first, = alertmanager.alerts(environment="am-repeat")
    again = run_alerting("am-repeat", gateway, notify)
    assert again.ret == 1
    assert deliveries(again, "alertmanager")[0]["outcome"] == "nothing_to_send"
    unchanged, = alertmanager.alerts(environment="am-repeat")
    assert unchanged["updatedAt"] == first["updatedAt"]  # not posted again
    while datetime.now(timezone.utc) - when(first["updatedAt"]) < timedelta(seconds=1.5):
        time.sleep(0.1)  # a reminder is due once repeat_after (1s below) has passed since the first send
    reminded = run_alerting("am-repeat", gateway, {**notify, "repeat_after": "1s",
                                                  "alertmanager": {"am": {"url": alertmanager.url,
                                                                          "expires_after": "1h"}}})
    sent, = deliveries(reminded, "alertmanager")
    assert (sent["outcome"], sent["reminders"], sent["firing"]) == ("sent", 1, 0)
    renewed, = alertmanager.alerts(environment="am-repeat")
    assert when(renewed["updatedAt"]) > when(first["updatedAt"])
    assert renewed["startsAt"] == first["startsAt"]  # the same failure, since its first run


def test_webhook_gets_chat_text_with_its_secret_url_and_header(run_alerting, gateway, httpserver, monkeypatch):
    monkeypatch.setenv("HOOK_PATH", "T0CANARY/B0CANARY/hook-canary-7f3a9c")
    monkeypatch.setenv("HOOK_BEARER", "bearer-canary-51d0e2")
    httpserver.expect_request("/services/T0CANARY/B0CANARY/hook-canary-7f3a9c", method="POST").respond_with_data("ok")
    notify = {"webhook": {"chat": {"url": httpserver.url_for("/services/${HOOK_PATH}"),
                                   "headers": {"Authorization": "Bearer ${HOOK_BEARER}"}}}}
    run = run_alerting("hook", gateway, notify)
    (request, _), = httpserver.log
    assert request.headers["Authorization"] == "Bearer bearer-canary-51d0e2"
    body = request.get_json()
    assert body["text"].splitlines() == [
        f"opsproof hook/nightly: {run.results['verdict']}",
        f"FAILING p1 {CHECK}: port_state ('refused') == 'open' on tcp.gateway",
        f"report: {run.run_dir / 'report.html'}",
    ]
    assert body["opsproof"]["alerts"][0]["labels"]["check"] == CHECK
    sent, = deliveries(run, "webhook")
    assert sent["destination"] == f"http://{httpserver.host}:{httpserver.port}"  # no path: it is the credential
    gateway.open()
    resolved = run_alerting("hook", gateway, notify)
    assert resolved.ret == 0
    assert httpserver.log[1][0].get_json()["text"].splitlines()[1] == f"RESOLVED p1 {CHECK}"
    for artifact in [*resolved.run_dir.iterdir(), *run.run_dir.iterdir(), *Path(run.run_dir.parent).glob("*.json")]:
        if artifact.is_file():
            text = artifact.read_text(errors="replace")
            assert "canary" not in text, artifact
    assert "canary" not in run.output + resolved.output


def test_refusal_is_recorded_once_without_the_secrets_it_echoes(run_alerting, gateway, httpserver, monkeypatch):
    monkeypatch.setenv("HOOK_PATH", "hook-canary-7f3a9c")
    monkeypatch.setenv("HOOK_BEARER", "bearer-canary-51d0e2")

    def echo(request):  # a receiver that quotes what it refused, as many do
        from werkzeug import Response
        return Response(f"invalid token {request.headers['Authorization']} for {request.path}", status=403)

    httpserver.expect_request("/services/hook-canary-7f3a9c", method="POST").respond_with_handler(echo)
    notify = {"webhook": {"chat": {"url": httpserver.url_for("/services/${HOOK_PATH}"),
                                   "headers": {"Authorization": "Bearer ${HOOK_BEARER}"}}}}
    run = run_alerting("refused", gateway, notify)
    refused, = deliveries(run, "webhook")
    assert refused["outcome"] == "failed" and refused["attempts"] == 1  # a 4xx is not retried
    assert refused["error"] == "HTTP 403: invalid token *** for /services/***"  # the header value, whole
    assert "FAILED (1 firing not delivered) (1 attempt, " in run.output
    for artifact in [*run.run_dir.iterdir(), *run.run_dir.parent.glob("*.json*")]:
        assert "canary" not in artifact.read_text(errors="replace"), artifact
    assert "canary" not in run.output


@pytest.fixture
def dripping_receiver():
    """Accepts, answers 200 with a long body, then sends one byte every 0.2 s: never finishes, never idles."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop, requests = threading.Event(), []

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(1)
            requests.append(connection.recv(65536))
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(0.2):
                try:
                    connection.sendall(b".")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook", requests
    stop.set()
    acceptor.join()
    listener.close()


def test_hanging_receiver_costs_its_bounds_and_never_the_verdict(run_alerting, gateway, dripping_receiver, httpserver):
    url, requests = dripping_receiver
    bounds = {"timeout": "1s", "attempts": 3, "deadline": "2s"}
    run = run_alerting("hang", gateway, {"webhook": {"chat": {"url": url}}, **bounds})
    assert run.ret == 1 and run.results["exit_code"] == 1
    assert run.results["verdict"].startswith("FAIL (gate p1): 1 gating of 1 checks")
    hung, = deliveries(run, "webhook")
    assert hung["outcome"] == "timed_out" and hung["firing"] == 1
    assert hung["error"].startswith("deadline of 2s passed: no complete answer within 1s")
    assert hung["attempts"] == 2 and len(requests) == 2  # 1 s, 0.5 s back-off, cut by the deadline at 2 s
    assert hung["duration_s"] < 2.5
    assert f"alerts       webhook chat ({url.removesuffix('/hook')}): TIMED OUT (1 firing not delivered)" \
        in run.output
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    retried = run_alerting("hang", gateway, {"webhook": {"chat": {"url": httpserver.url_for("/hook")}}, **bounds})
    sent, = deliveries(retried, "webhook")
    assert (sent["outcome"], sent["firing"]) == ("sent", 1)  # not delivered before, so sent as new now


def test_no_notify_sends_nothing_and_remembers_nothing(run_alerting, gateway, httpserver, tmp_path):
    run = run_alerting("quiet", gateway, {"webhook": {"chat": {"url": httpserver.url_for("/hook")}}}, "--no-notify")
    assert run.ret == 1 and httpserver.log == []
    assert run.results["deliveries"] == [] and "alerts " not in run.output
    assert not (tmp_path / "reports" / "quiet" / "notify-nightly.json").exists()


def test_an_unusable_state_file_is_said_and_changes_nothing_else(run_alerting, gateway, httpserver, tmp_path):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    (tmp_path / "reports" / "stateless").mkdir(parents=True)
    (tmp_path / "reports" / "stateless" / "notify-nightly.json").mkdir()  # neither readable nor replaceable
    run = run_alerting("stateless", gateway, {"webhook": {"chat": {"url": httpserver.url_for("/hook")}}})
    run_dir, = [d for d in run.run_dirs if d.name.endswith("-nightly")]  # not the directory in the state's place
    results = read_results(run_dir / "results.json")
    assert run.ret == 1 and results["exit_code"] == 1
    sent, = [d for d in results["deliveries"] if d["channel"] == "webhook"]
    assert (sent["outcome"], sent["firing"]) == ("sent", 1)
    assert "unreadable (" in run.output and "starting afresh" in run.output
    assert "could not write" in run.output and "the next run sends these again" in run.output
    assert history_verifies(tmp_path / "reports" / "stateless" / "history.jsonl")
    assert sorted(p.name for p in run_dir.parent.iterdir() if p.name.startswith(".")) == []  # no temporary left


def history_verifies(path: Path) -> bool:
    from opsproof import history

    return history.verify(path).ok


def test_a_secret_in_the_evidence_stays_out_of_alerts_webhooks_metrics_and_state(pytester, tmp_path, monkeypatch,
                                                                                   httpserver, alertmanager):
    """The API echoes the bearer token into the field the check compares: the evidence line carries it."""
    canary = "evidence-canary-93be1f"
    monkeypatch.setenv("API_TOKEN", canary)
    monkeypatch.delenv("OPSPROOF_ENV", raising=False)

    def echo(request):
        from werkzeug import Response
        return Response(json.dumps({"status": request.headers["Authorization"]}), content_type="application/json")

    httpserver.expect_request("/health").respond_with_handler(echo)
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    env_path = tmp_path / "echo.yaml"
    env_path.write_text(yaml.safe_dump({"name": "echo", "tier": "staging", "http": {"api": {
        "url": httpserver.url_for("/").rstrip("/"), "timeout_s": 3, "headers": {"Authorization": "Bearer ${API_TOKEN}"},
        "health": {"path": "/health", "json": {"status": "healthy"}}}},
        "notify": {"alertmanager": {"am": {"url": alertmanager.url}},
                   "webhook": {"chat": {"url": httpserver.url_for("/hook")}}}}))
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    result = pytester.runpytest_inprocess("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                          str(ROOT / "checks" / "test_http.py"), "--env", str(env_path),
                                          "--reports-dir", str(tmp_path / "reports"), "--suite", "nightly",
                                          "-k", "health_reports_expected_fields", "--metrics-textfile", str(textfiles))
    run = ChecksRun(result, tmp_path / "reports")
    alert, = alertmanager.alerts(environment="echo")
    assert alert["annotations"]["evidence"] == "health_fields ({'status': '***'}) == {'status': 'healthy'} on http.api"
    webhook = [r for r, _ in httpserver.log if r.path == "/hook"]
    assert len(webhook) == 1 and "***" in webhook[0].get_data(as_text=True)
    seen = [json.dumps(alert), webhook[0].get_data(as_text=True), run.output,
            *(p.read_text() for p in [*textfiles.iterdir(), *run.run_dir.iterdir(), *run.run_dir.parent.glob("*.json")])]
    assert not [text for text in seen if canary in text]
