"""What a Kubernetes target expects of the cluster beyond its named workloads: nodes, every pod and Warning
event of a namespace, autoscalers, disruption budgets, volume claims, certificates and Ingress TLS.

Each is off unless given; ``autoscalers: true`` (or ``{}``) judges every HorizontalPodAutoscaler of the
target's namespace, ``{namespaces: [shop, payments]}`` those of the namespaces named.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from opsproof.environment.base import Duration, Model
from opsproof.thresholds import Floor

Namespace = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]


class Scan(Model):
    """Every object of one kind in these namespaces (default: the target's ``namespace``)."""

    namespaces: list[Namespace] = Field(default_factory=list)


class NodesExpectation(Model):
    label_selector: str | None = Field(None, description="only these nodes, e.g. node-role.kubernetes.io/worker")
    min_ready: Annotated[int, Field(ge=0)] = 1


class EventsScan(Scan):
    window: Duration = Field(1800.0, description="how far back a Warning event counts: 30m")
    max: Annotated[int, Field(ge=0)] = Field(0, description="Warning events allowed within the window")
    ignore_reasons: list[str] = Field(default_factory=list, description="reasons not counted, e.g. FailedScheduling")


class ExpiryScan(Scan):
    days_left: Floor = Field(Floor(warn=21, crit=7), description="days to the certificate's notAfter")


CLUSTER_FIELDS = ("nodes", "namespace_pods", "namespace_events", "autoscalers", "disruption_budgets",
                  "volume_claims", "certificates", "ingress_tls")


class ClusterExpectations(Model):
    """The fields a Kubernetes target gains for the cluster-wide checks (checks/test_cluster.py)."""

    nodes: NodesExpectation | None = Field(None, description="every node Ready, no memory, disk or PID pressure")
    namespace_pods: Scan | None = Field(None, description="every pod of the namespaces, without listing workloads")
    namespace_events: EventsScan | None = None
    autoscalers: Scan | None = Field(None, description="HorizontalPodAutoscalers keep up, can scale, not at max")
    disruption_budgets: Scan | None = Field(None, description="each PodDisruptionBudget allows a disruption")
    volume_claims: Scan | None = Field(None, description="every PersistentVolumeClaim Bound")
    certificates: ExpiryScan | None = Field(None, description="cert-manager Certificates Ready and not expiring")
    ingress_tls: ExpiryScan | None = Field(None, description="the TLS secrets Ingresses name, not expiring")

    @field_validator(*CLUSTER_FIELDS, mode="before")
    @classmethod
    def _switch(cls, value):
        """``true`` turns a check on with its defaults, ``false`` leaves it off."""
        if value is True:
            return {}
        return None if value is False else value

    def namespaces_of(self, scan: Scan) -> list[str]:
        return scan.namespaces or [self.namespace]
