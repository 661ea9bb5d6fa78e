"""--expect-version: only what declares a version or belongs to the named release group; per workload with
NAME=TAG. And an HTTP target's version through a load balancer, sampled on a new connection each time.

The Kubernetes part runs the real client against the emulated API (test_kubernetes_checks.py); the HTTP
part starts two small HTTP servers (blue and green) behind a round-robin TCP proxy, as a layer-4 load
balancer spreads connections.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from werkzeug import Response

from test_kubernetes_checks import CONTAINER, NS, _pod, k8s_environment, write_kubeconfig

IMAGES = {"api": "registry.example.com/shop/api:1.4.3", "worker": "registry.example.com/shop/worker:1.4.3",
          "postgres": "docker.io/library/postgres:15.6", "node-exporter": "quay.io/prometheus/node-exporter:v1.7.0"}
# the README's example: the API declares its version; the database and the node exporter do not
README_WORKLOADS = [{"kind": "Deployment", "name": "api", "container": "api", "version": "1.4.3"},
                    {"kind": "StatefulSet", "name": "postgres"},
                    {"kind": "DaemonSet", "name": "node-exporter", "namespace": "monitoring"}]
PLACES = {"api": ("deployments", NS), "worker": ("deployments", NS), "postgres": ("statefulsets", NS),
          "node-exporter": ("daemonsets", "monitoring")}


def workload(name: str, plural: str, namespace: str) -> dict:
    kind = {"deployments": "Deployment", "statefulsets": "StatefulSet", "daemonsets": "DaemonSet"}[plural]
    container = {**CONTAINER, "name": name, "image": IMAGES[name]}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace, "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
            "status": {"observedGeneration": 2}}


def pod(name: str, namespace: str, index: int) -> dict:
    found = _pod(f"{name}-{index}")
    found["metadata"].update(namespace=namespace, labels={"app": name})
    found["spec"]["containers"] = [{**CONTAINER, "name": name, "image": IMAGES[name]}]
    return found


class Workloads:
    """Deployments, a StatefulSet and a DaemonSet, and their pods found by label selector as the API does."""

    def __init__(self, httpserver):
        self.pods = {ns: [pod(n, ns, i) for n, (_, where) in PLACES.items() if where == ns for i in (0, 1)]
                     for ns in (NS, "monitoring")}
        self._server = httpserver
        for name, (plural, namespace) in PLACES.items():
            httpserver.expect_request(f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}").respond_with_json(
                workload(name, plural, namespace))
        for namespace in self.pods:
            httpserver.expect_request(f"/api/v1/namespaces/{namespace}/pods").respond_with_handler(
                self._selected(namespace))

    def _selected(self, namespace):
        def handler(request):
            selector = parse_qs(urlsplit(request.full_path).query).get("labelSelector", [""])[0]
            key, _, value = selector.partition("=")
            items = [p for p in self.pods[namespace] if p["metadata"]["labels"].get(key) == value]
            return Response(json.dumps({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
                            content_type="application/json")

        return handler

    def runs(self, name: str, image: str, index: int = 1) -> None:
        namespace = PLACES[name][1]
        target = next(p for p in self.pods[namespace] if p["metadata"]["name"] == f"{name}-{index}")
        target["spec"]["containers"][0] = {**target["spec"]["containers"][0], "image": image}

    def kubeconfig(self, directory) -> str:
        return write_kubeconfig(directory, self._server.url_for("").rstrip("/"))


@pytest.fixture
def run_versions(httpserver, tmp_path, write_env, run_checks):
    cluster = Workloads(httpserver)

    def run(*args, workloads=README_WORKLOADS):
        environment = k8s_environment(cluster.kubeconfig(tmp_path), workloads=copy.deepcopy(workloads), services=[],
                                      cronjobs=[])
        return run_checks(write_env(environment), "-k", "workloads_run_expected_version", *args)

    run.cluster = cluster
    return run


def version_record(run) -> dict:
    return run.record("test_workloads_run_expected_version")


def test_readme_example_checks_only_the_workload_that_declares_a_version(run_versions):
    """Regression: one --expect-version used to be applied to every workload, so this failed on the
    postgres StatefulSet (15.6) and the node-exporter DaemonSet (v1.7.0)."""
    run = run_versions("--expect-version", "1.4.3")
    assert run.ret == 0, version_record(run)["message"]
    measured = [m["measure"] for m in version_record(run)["measurements"]]
    assert measured == [f"{NS}/Deployment/api image_tags", f"{NS}/Deployment/api containers_not_on_1.4.3",
                        f"{NS}/Deployment/api pods"]


def test_name_equals_tag_sets_one_workload_and_the_rest_keep_theirs(run_versions):
    run = run_versions("--expect-version", "1.4.3", "--expect-version", "monitoring/node-exporter=v1.8.0",
                       "--expect-version", "postgres=15.6")
    assert run.ret == 1
    assert version_record(run)["message"] == (
        "monitoring/DaemonSet/node-exporter containers_not_on_v1.8.0 ({'node-exporter-0/node-exporter': 'v1.7.0', "
        "'node-exporter-1/node-exporter': 'v1.7.0'}) == {} on kubernetes.staging")
    measured = {m["measure"] for m in version_record(run)["measurements"]}
    assert {f"{NS}/StatefulSet/postgres containers_not_on_15.6",
            f"{NS}/Deployment/api containers_not_on_1.4.3"} <= measured


def test_a_release_group_takes_its_tag_and_a_named_workload_wins(run_versions):
    workloads = [{"kind": "Deployment", "name": "api", "version": "1.4.3", "release": "shop"},
                 {"kind": "Deployment", "name": "worker", "release": "shop"}, *README_WORKLOADS[1:]]
    run_versions.cluster.runs("worker", "registry.example.com/shop/worker:1.4.2")
    run = run_versions("--expect-version", "shop=1.4.3", workloads=workloads)
    assert version_record(run)["message"] == (
        f"{NS}/Deployment/worker containers_not_on_1.4.3 ({{'worker-1/worker': '1.4.2'}}) == {{}} "
        "on kubernetes.staging")
    assert run_versions("--expect-version", "shop=1.4.3", "--expect-version", "worker=1.4.2",
                        workloads=workloads).ret == 1  # worker-0 still runs 1.4.3


@pytest.mark.parametrize("flags, error", [
    (["apii=1.4.3"], "--expect-version apii=1.4.3: nothing in {env} is named 'apii', nor is a release group"),
    (["1.4.3", "1.4.4"], "--expect-version gives workload shop/Deployment/api 2 versions: 1.4.3, 1.4.4"),
    (["=1.4.3"], "--expect-version =1.4.3: write VALUE or NAME=VALUE"),
])
def test_an_expect_version_that_reaches_nothing_or_too_much_is_a_usage_error(run_versions, flags, error):
    run = run_versions(*[arg for flag in flags for arg in ("--expect-version", flag)])
    assert run.ret == 4 and run.results is None
    assert error.split("{env}")[0] in run.output and error.split("{env}")[-1] in run.output


def test_a_bare_tag_that_nothing_declares_is_a_usage_error(run_versions):
    run = run_versions("--expect-version", "1.4.3", workloads=README_WORKLOADS[1:])
    assert run.ret == 4
    assert "nothing in " in run.output
    assert ("declares a version (a workload's or an HTTP target's version:), so it would check nothing; say what "
            "it is for: --expect-version NAME=1.4.3") in run.output


# --- blue-green behind a load balancer -------------------------------------------------------------------


def backend(version: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections alive, as real backends do
        timeout = 10

        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"service": "api", "build": {"version": version, "commit": "9f2a1c"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-App-Version", version)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class RoundRobin:
    """A layer-4 load balancer: each new connection goes to the next backend, bytes relayed both ways."""

    def __init__(self, ports: list[int]):
        self.ports, self.connections = ports, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.ports[self.connections % len(self.ports)]))
            self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    @staticmethod
    def _relay(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


@pytest.fixture
def load_balancer():
    """``load_balancer("1.4.3", "1.4.2")``: blue and green backends behind one round-robin proxy."""
    started = []

    def start(*versions):
        servers = [backend(version) for version in versions]
        proxy = RoundRobin([server.server_address[1] for server in servers])
        started.append((servers, proxy))
        return proxy

    yield start
    for servers, proxy in started:
        proxy.close()
        for server in servers:
            server.shutdown()
            server.server_close()


def lb_environment(port: int, **version) -> dict:
    url = f"http://127.0.0.1:{port}"
    return {"tier": "staging", "http": {
        "lb": {"url": url, "timeout_s": 3, "version": {"path": "/version", "json": "build.version", **version}},
        "lb-header": {"url": url, "timeout_s": 3, "version": {"path": "/version", "header": "X-App-Version",
                                                                "samples": 4, **version}}}}


def test_blue_green_switched_every_sample_shows_the_new_version(load_balancer, write_env, run_checks):
    proxy = load_balancer("1.4.3", "1.4.3")
    run = run_checks(write_env(lb_environment(proxy.port, expected="1.4.3")), "-k", "every_instance")
    assert run.ret == 0, run.output
    assert run.record("test_every_instance_serves_expected_version", "lb")["measurements"] == [
        {"measure": "version_split", "value": {"1.4.3": 20}, "op": "==", "limit": {"1.4.3": 20}, "verdict": "ok"}]
    assert proxy.connections == 20 + 4  # a new connection per sample, so the balancer chose afresh each time


def test_an_old_instance_still_answering_fails_with_the_split(load_balancer, write_env, run_checks):
    pooled_port = load_balancer("1.4.3", "1.4.2").port
    with httpx.Client() as pooled:  # what a kept-alive connection would have seen: one backend only
        assert {pooled.get(f"http://127.0.0.1:{pooled_port}/version").json()["build"]["version"]
                for _ in range(4)} == {"1.4.3"}
    proxy = load_balancer("1.4.3", "1.4.2")
    run = run_checks(write_env(lb_environment(proxy.port)), "-k", "every_instance", "--expect-version", "1.4.3")
    assert run.ret == 1
    assert run.record("test_every_instance_serves_expected_version", "lb")["message"] == (
        "version_split ({'1.4.3': 10, '1.4.2': 10}) == {'1.4.3': 20} on http.lb")
    assert run.record("test_every_instance_serves_expected_version", "lb-header")["message"] == (
        "version_split ({'1.4.3': 2, '1.4.2': 2}) == {'1.4.3': 4} on http.lb-header")


def test_without_an_expected_version_two_answering_releases_still_fail(load_balancer, write_env, run_checks):
    proxy = load_balancer("1.4.3", "1.4.2")
    run = run_checks(write_env(lb_environment(proxy.port)), "-k", "every_instance")
    assert run.record("test_every_instance_serves_expected_version", "lb")["message"] == (
        "versions_answering (2) == 1 on http.lb: split {'1.4.3': 10, '1.4.2': 10}")
