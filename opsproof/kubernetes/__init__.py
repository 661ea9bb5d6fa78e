"""Kubernetes: rollout status as kubectl decides it, pods, endpoints and CronJobs, read-only."""

from opsproof.kubernetes.probe import KubernetesProbe, label_selector

__all__ = ["KubernetesProbe", "label_selector"]
