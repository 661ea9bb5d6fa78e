"""What a Kubernetes target expects: which workloads must be rolled out, at which version, and how healthy."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from opsproof.environment.base import Model, Seconds, Target
from opsproof.environment.cluster import ClusterExpectations
from opsproof.environment.ops import PodLog
from opsproof.environment.overrides import Release

Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]


class Workload(Model):
    """A Deployment / StatefulSet / DaemonSet the gate proves: rolled out, running the expected version."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"
    name: Name
    namespace: Name | None = Field(None, description="defaults to the target's namespace")
    container: str | None = Field(None, description="the container whose image is checked (default: all)")
    version: str | None = Field(None, description="expected image tag; --expect-version overrides it")
    release: Release | None = Field(None, description="release group: --expect-version GROUP=TAG sets its tag")


class ServiceExpectation(Model):
    name: Name
    namespace: Name | None = None
    min_ready: Annotated[int, Field(ge=1)] = 1


class CronJobExpectation(Model):
    """A CronJob (a backup job, say) whose last successful run must be recent."""

    name: Name
    namespace: Name | None = None
    max_age_h: Annotated[float, Field(gt=0, le=24 * 366)]


class KubernetesTarget(Target, ClusterExpectations):
    """One cluster (kubeconfig + context, or the in-cluster service account) and what must hold there."""

    kind: ClassVar[str] = "kubernetes"
    kubeconfig: str | None = Field(None, description="path; default $KUBECONFIG or ~/.kube/config")
    context: str | None = None
    in_cluster: bool = False
    namespace: Name = "default"
    workloads: list[Workload] = Field(default_factory=list)
    services: list[ServiceExpectation] = Field(default_factory=list)
    cronjobs: list[CronJobExpectation] = Field(default_factory=list)
    logs: list[PodLog] = Field(default_factory=list, description="patterns in the pods' logs of a workload")
    restart_limit: Annotated[int, Field(ge=0)] = 3
    events_window_min: Annotated[float, Field(gt=0, le=24 * 60)] = 30
    request_timeout_s: Seconds = 10.0
    rollout_timeout_s: Seconds = 120.0
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 2.0

    @model_validator(mode="after")
    def _one_way_in(self):
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError("in_cluster excludes kubeconfig and context")
        return self

    def namespace_of(self, item) -> str:
        return item.namespace or self.namespace
