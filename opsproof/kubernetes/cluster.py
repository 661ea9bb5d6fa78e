"""The reads behind the cluster-wide checks: list and get only, each one request bounded by the timeout.

Mixed into ``KubernetesProbe`` (they use its ``_call``), so a check asks ``kubernetes.nodes()`` as it asks
``kubernetes.pods(...)``. Nodes are cluster-scoped: deploy/rbac.yaml grants them in a ClusterRole.

>>> kubernetes.nodes("node-role.kubernetes.io/worker")       # doctest: +SKIP
[{'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': 'node-1', ...}, 'status': {'conditions': [...]}}]
>>> kubernetes.tls_secret_expiries("shop", "web-tls")        # doctest: +SKIP
([('CN=shop.example.com', datetime.datetime(2027, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)), ...], 'ok')
"""

from __future__ import annotations

import base64

from opsproof.errors import ProbeError, first_line


class ClusterReads:
    def _items(self, api: str, method: str, *args, **kwargs) -> list[dict]:
        return self._call(api, method, *args, **kwargs).get("items") or []

    def nodes(self, label_selector: str | None = None) -> list[dict]:
        return self._items("CoreV1Api", "list_node", **({"label_selector": label_selector} if label_selector else {}))

    def namespace_pods(self, namespace: str) -> list[dict]:
        """Every pod of the namespace, whatever owns it."""
        return self._items("CoreV1Api", "list_namespaced_pod", namespace)

    def autoscalers(self, namespace: str) -> list[dict]:
        return self._items("AutoscalingV2Api", "list_namespaced_horizontal_pod_autoscaler", namespace)

    def disruption_budgets(self, namespace: str) -> list[dict]:
        return self._items("PolicyV1Api", "list_namespaced_pod_disruption_budget", namespace)

    def volume_claims(self, namespace: str) -> list[dict]:
        return self._items("CoreV1Api", "list_namespaced_persistent_volume_claim", namespace)

    def ingresses(self, namespace: str) -> list[dict]:
        return self._items("NetworkingV1Api", "list_namespaced_ingress", namespace)

    def certificates(self, namespace: str) -> list[dict]:
        """cert-manager's ``cert-manager.io/v1`` Certificates; a cluster without the CRD says so."""
        found = self._call("CustomObjectsApi", "list_namespaced_custom_object", "cert-manager.io", "v1", namespace,
                           "certificates", missing_ok=True)
        if found is None:
            raise ProbeError("cert-manager.io/v1 certificates are not served here (is cert-manager installed?)")
        return found.get("items") or []

    def tls_secret_expiries(self, namespace: str, name: str) -> tuple[list[tuple], str]:
        """The certificates in a TLS Secret's ``tls.crt``, leaf first, with their notAfter, and ``'ok'`` or what
        is wrong with it (``'not found'``, ``'no tls.crt'``...). The Secret arrives whole; ``tls.key`` is
        dropped unread."""
        secret = self._call("CoreV1Api", "read_namespaced_secret", name, namespace, missing_ok=True)
        if secret is None:
            return [], "not found"
        encoded = (secret.get("data") or {}).get("tls.crt")
        del secret
        if not encoded:
            return [], "no tls.crt"
        from opsproof.kubernetes.health import pem_expiries

        try:
            expiries = pem_expiries(base64.b64decode(encoded))
        except ValueError as error:
            return [], f"unreadable: {first_line(error)}"
        return expiries, "ok" if expiries else "no certificate in tls.crt"
