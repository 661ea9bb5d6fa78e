"""``kubectl rollout status`` as pure functions over API objects (dicts as the API returns them).

A port of kubectl's pkg/polymorphichelpers/rollout_status.go: same order of tests, same messages,
so a verdict here is the verdict kubectl would print. Each returns ``(message, done)`` or raises
``RolloutError`` where kubectl returns an error (a deadline exceeded, a strategy it cannot follow).
"""

from __future__ import annotations


class RolloutError(Exception):
    """kubectl stops with an error: waiting longer will not help."""


def _meta(obj: dict) -> tuple[str, int]:
    meta = obj.get("metadata") or {}
    return meta.get("name", ""), int(meta.get("generation") or 0)


def deployment_status(obj: dict) -> tuple[str, bool]:
    name, generation = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if generation <= int(status.get("observedGeneration") or 0):
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
        replicas = spec.get("replicas")
        updated = int(status.get("updatedReplicas") or 0)
        if replicas is not None and updated < replicas:
            return (f'Waiting for deployment "{name}" rollout to finish: '
                    f"{updated} out of {replicas} new replicas have been updated..."), False
        current = int(status.get("replicas") or 0)
        if current > updated:
            return (f'Waiting for deployment "{name}" rollout to finish: '
                    f"{current - updated} old replicas are pending termination..."), False
        available = int(status.get("availableReplicas") or 0)
        if available < updated:
            return (f'Waiting for deployment "{name}" rollout to finish: '
                    f"{available} of {updated} updated replicas are available..."), False
        return f'deployment "{name}" successfully rolled out', True
    return "Waiting for deployment spec update to be observed...", False


def daemonset_status(obj: dict) -> tuple[str, bool]:
    name, generation = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if ((spec.get("updateStrategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    if generation <= int(status.get("observedGeneration") or 0):
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        if updated < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: '
                    f"{updated} out of {desired} new pods have been updated..."), False
        available = int(status.get("numberAvailable") or 0)
        if available < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: '
                    f"{available} of {desired} updated pods are available..."), False
        return f'daemon set "{name}" successfully rolled out', True
    return "Waiting for daemon set spec update to be observed...", False


def statefulset_status(obj: dict) -> tuple[str, bool]:
    _, generation = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    observed = int(status.get("observedGeneration") or 0)
    if observed == 0 or generation > observed:
        return "Waiting for statefulset spec update to be observed...", False
    replicas = spec.get("replicas")
    ready = int(status.get("readyReplicas") or 0)
    if replicas is not None and ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    updated = int(status.get("updatedReplicas") or 0)
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = rolling.get("partition")
        if replicas is not None and partition is not None and updated < replicas - partition:
            # kubectl's table lists done=true here but only asserts done is never wrongly true; its code says false
            return (f"Waiting for partitioned roll out to finish: "
                    f"{updated} out of {replicas - partition} new pods have been updated..."), False
        return f"partitioned roll out complete: {updated} new pods have been updated...", True
    if status.get("updateRevision") != status.get("currentRevision"):
        return (f"waiting for statefulset rolling update to complete {updated} pods "
                f"at revision {status.get('updateRevision')}..."), False
    return (f"statefulset rolling update complete {int(status.get('currentReplicas') or 0)} pods "
            f"at revision {status.get('currentRevision')}..."), True


VIEWERS = {"Deployment": deployment_status, "DaemonSet": daemonset_status, "StatefulSet": statefulset_status}


def rollout_status(kind: str, obj: dict) -> tuple[str, bool]:
    return VIEWERS[kind](obj)
