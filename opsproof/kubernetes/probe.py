"""Kubernetes probe: the official client, read verbs only (get/list), every request bounded.

Objects come back as the API's JSON (dicts), so the judging functions in rollout.py and pods.py
stay pure and are tested with kubectl's own cases. The client is imported on first use only.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone

from opsproof.errors import ProbeError, first_line
from opsproof.kubernetes.cluster import ClusterReads
from opsproof.kubernetes.rollout import RolloutError, rollout_status

_CONNECTION_PREFIX = r"^(<[^>]*>|\w+\(host=[^)]*\)): "
_READERS = {"Deployment": "read_namespaced_deployment", "StatefulSet": "read_namespaced_stateful_set",
            "DaemonSet": "read_namespaced_daemon_set"}


def label_selector(selector: dict) -> str:
    """A LabelSelector object as the ``labelSelector`` query string (what kubectl sends)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


class KubernetesProbe(ClusterReads):
    def __init__(self, kubeconfig: str | None, context: str | None, in_cluster: bool, request_timeout_s: float):
        self._kubeconfig = os.path.expanduser(kubeconfig) if kubeconfig else None
        self._context, self._in_cluster = context, in_cluster
        self.timeout_s = request_timeout_s
        self._client = None
        self._pods: dict[tuple[str, str], list[dict]] = {}

    def _api(self):
        if self._client is None:
            from kubernetes import client, config  # ~0.5 s: only when an environment has clusters

            configuration = client.Configuration()
            try:
                if self._in_cluster:
                    config.load_incluster_config(client_configuration=configuration)
                else:
                    config.load_kube_config(config_file=self._kubeconfig, context=self._context,
                                            client_configuration=configuration, persist_config=False)
            except Exception as exc:  # noqa: BLE001 - the loaders raise several unrelated types
                raise ProbeError(f"kubeconfig: {first_line(exc)}", unreachable=True) from None
            configuration.retries = 0  # one attempt per request: the timeout is the bound, not 3x it
            self._client = client.ApiClient(configuration)
        return self._client

    def _call(self, api: str, method: str, *args, missing_ok: bool = False, **kwargs) -> dict | None:
        """One API request, bounded by the timeout; ``missing_ok``: None when the API answers 404."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError as Urllib3Timeout

        what = f"{method}({', '.join(map(str, args))})"
        try:
            response = getattr(getattr(client, api)(self._api()), method)(
                *args, _preload_content=False, _request_timeout=self.timeout_s, **kwargs)
            return json.loads(response.data)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise ProbeError(f"{what}: HTTP {exc.status} {exc.reason}") from None
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, Urllib3Timeout) and not isinstance(reason, NewConnectionError):  # a subclass
                problem = f"no answer within {self.timeout_s:g} s"
            else:  # urllib3 prefixes the connection object: keep the part a person reads
                problem = f"{type(reason).__name__}: {re.sub(_CONNECTION_PREFIX, '', first_line(reason))}"
            raise ProbeError(f"{what}: {problem}", unreachable=True) from None

    def workload(self, kind: str, namespace: str, name: str) -> dict:
        return self._call("AppsV1Api", _READERS[kind], name, namespace)

    def rollouts(self, workloads: list[tuple[str, str, str]], timeout_s: float,
                 interval_s: float) -> dict[tuple[str, str, str], tuple[str, bool]]:
        """Poll like ``kubectl rollout status --timeout`` for each ``(namespace, kind, name)`` at once:
        until every one is done or has a kubectl error, or one deadline for all of them passes."""
        deadline = time.monotonic() + timeout_s
        verdicts: dict[tuple[str, str, str], tuple[str, bool]] = {}
        pending = list(workloads)
        while True:
            for key in list(pending):
                namespace, kind, name = key
                try:
                    verdicts[key] = rollout_status(kind, self.workload(kind, namespace, name))
                except RolloutError as error:
                    verdicts[key] = (f"error: {error}", False)
                if verdicts[key][1] or verdicts[key][0].startswith("error: "):
                    pending.remove(key)
            if not pending or time.monotonic() + interval_s > deadline:
                return {key: verdicts[key] for key in workloads}
            time.sleep(interval_s)

    def pods(self, kind: str, namespace: str, name: str) -> list[dict]:
        """The workload's pods (by its selector), read once per session and shared by the pod checks."""
        key = (namespace, f"{kind}/{name}")
        if key not in self._pods:
            selector = label_selector((self.workload(kind, namespace, name).get("spec") or {}).get("selector") or {})
            self._pods[key] = self._call("CoreV1Api", "list_namespaced_pod", namespace,
                                         label_selector=selector).get("items") or []
        return self._pods[key]

    def pod_logs(self, check, namespace: str):
        """A log check over every pod of a workload (opsproof.logsource.scan_pod_logs); no pods is an error."""
        from opsproof.logsource import scan_pod_logs

        pods = self.pods(check.kind, namespace, check.workload)
        if not pods:
            raise ProbeError(f"{namespace}/{check.kind}/{check.workload}: no pods to read logs from")

        def read(name: str, pod_namespace: str, container: str, **query):
            from kubernetes import client

            try:
                return client.CoreV1Api(self._api()).read_namespaced_pod_log(
                    name, pod_namespace or namespace, container=container, _preload_content=False,
                    _request_timeout=self.timeout_s, **query)
            except Exception as exc:  # noqa: BLE001 - ApiException and urllib3's errors, said as one line
                status = getattr(exc, "status", None)
                raise ProbeError(f"read_namespaced_pod_log({name}, {container}): "
                                 f"{f'HTTP {status} {exc.reason}' if status else first_line(exc)}") from None

        return scan_pod_logs(read, pods, check)

    def warning_events(self, namespace: str) -> list[dict]:
        return self._call("CoreV1Api", "list_namespaced_event", namespace,
                          field_selector="type=Warning").get("items") or []

    def ready_endpoints(self, namespace: str, service: str) -> int:
        """Ready addresses behind a Service: EndpointSlices, or Endpoints where discovery/v1 is absent."""
        self._call("CoreV1Api", "read_namespaced_service", service, namespace)  # a missing Service is an error
        slices = self._call("DiscoveryV1Api", "list_namespaced_endpoint_slice", namespace, missing_ok=True,
                            label_selector=f"kubernetes.io/service-name={service}")
        if slices is None:  # no discovery/v1 on this cluster
            subsets = self._call("CoreV1Api", "read_namespaced_endpoints", service, namespace).get("subsets") or []
            return sum(len(s.get("addresses") or []) for s in subsets)
        return sum(1 for s in slices.get("items") or [] for e in s.get("endpoints") or []
                   if (e.get("conditions") or {}).get("ready") is not False)

    def cronjob(self, namespace: str, name: str) -> dict:
        return self._call("BatchV1Api", "read_namespaced_cron_job", name, namespace)

    def custom_objects(self, group: str, version: str, namespace: str, plural: str,
                       label_selector: str | None = None) -> list[dict]:
        """``kubectl get <plural>.<group> -n <namespace> [-l <selector>]``: custom resources (Velero's, say)."""
        selector = {"label_selector": label_selector} if label_selector else {}
        return self._call("CustomObjectsApi", "list_namespaced_custom_object", group, version, namespace, plural,
                          **selector).get("items") or []

    def custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict | None:
        """One custom resource, or None when the API says it does not exist (HTTP 404)."""
        return self._call("CustomObjectsApi", "get_namespaced_custom_object", group, version, namespace, plural,
                          name, missing_ok=True)

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
