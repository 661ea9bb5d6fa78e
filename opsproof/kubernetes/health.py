"""Pure judgements over cluster objects as the API returns them: nodes, namespace pods and events,
HorizontalPodAutoscalers, PodDisruptionBudgets, PersistentVolumeClaims, cert-manager Certificates and
the certificates in a ``kubernetes.io/tls`` Secret.

Conditions are matched on ``type``, ``status`` (the strings "True", "False", "Unknown") and ``reason``,
as the kubelet, the HPA controller and cert-manager write them; messages are evidence, never matched.

>>> node = {"metadata": {"name": "node-2"}, "status": {"conditions": [
...     {"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure"},
...     {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
>>> node_problems([node])
({}, {'node-2': ['DiskPressure (KubeletHasDiskPressure)']}, [])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from opsproof.kubernetes.pods import parse_time

PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")  # healthy when not True


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def conditions_of(obj: dict) -> dict[str, dict]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def node_problems(nodes: list[dict]) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """(nodes not Ready, nodes under pressure, cordoned nodes). Unknown condition types are ignored; an
    absent pressure condition counts as none (NetworkUnavailable is often absent)."""
    not_ready, pressure, cordoned = {}, {}, []
    for node in nodes:
        name, conditions = name_of(node), conditions_of(node)
        ready = conditions.get("Ready")
        if ready is None:
            not_ready[name] = "no Ready condition"
        elif ready.get("status") != "True":
            not_ready[name] = f"{ready.get('status')} ({ready.get('reason')}: {ready.get('message', '')})"
        found = [f"{kind} ({conditions[kind].get('reason')})" for kind in PRESSURE
                 if (conditions.get(kind) or {}).get("status") == "True"]
        if found:
            pressure[name] = found
        if (node.get("spec") or {}).get("unschedulable"):
            cordoned.append(name)
    return not_ready, pressure, cordoned


def _finished_job_pod(pod: dict) -> bool:
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed") and any(owner.get("kind") == "Job" for owner in owners)


def settled(pods: list[dict]) -> list[dict]:
    """The pods a namespace sweep judges: not being deleted, and not a Job's finished run (the Job and its
    CronJob are judged for that)."""
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp") and not _finished_job_pod(p)]


def not_running(pods: list[dict]) -> dict[str, str]:
    """Pods neither Running nor Succeeded, with the kubelet's reason: ``{'api-x': 'Failed (Evicted)'}``."""
    found = {}
    for pod in pods:
        status = pod.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase not in ("Running", "Succeeded"):
            found[name_of(pod)] = f"{phase} ({status['reason']})" if status.get("reason") else phase
    return found


def span(seconds: float) -> str:
    """1800 -> ``30m``; how a window reads in a measure's name."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def recent_warnings(events: list[dict], window_s: float, now: datetime, ignore: list[str] = ()) -> list[str]:
    """Warning events last seen within the window, newest first: ``Pod/api-x: BackOff: ... (x4)``.

    An event's last sighting is ``series.lastObservedTime``, ``lastTimestamp`` or ``eventTime`` (events.k8s.io
    writers leave ``lastTimestamp`` empty), else its creation."""
    since, found = now - timedelta(seconds=window_s), []
    for event in events:
        if event.get("type") != "Warning" or event.get("reason") in ignore:
            continue
        series = event.get("series") or {}
        seen = parse_time(series.get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime")
                          or (event.get("metadata") or {}).get("creationTimestamp"))
        if seen is not None and seen < since:
            continue
        involved = event.get("involvedObject") or event.get("regarding") or {}
        count = series.get("count") or event.get("count") or 1
        found.append((seen or now, f"{involved.get('kind')}/{involved.get('name')}: {event.get('reason')}: "
                                   f"{event.get('message', '')}".strip() + (f" (x{count})" if count > 1 else "")))
    return [text for _, text in sorted(found, key=lambda pair: pair[0], reverse=True)]


@dataclass(frozen=True)
class Autoscaler:
    current: int
    desired: int
    max_replicas: int
    unable: dict[str, str]  # AbleToScale / ScalingActive not True: "reason: message"
    at_max: bool
    limited: str | None  # ScalingLimited's reason when True (TooManyReplicas, TooFewReplicas, ScaleUpLimit)


def autoscaler(hpa: dict) -> Autoscaler:
    """An ``autoscaling/v2`` HPA's state. ``currentReplicas`` is omitted when 0; ``ScalingActive`` False with
    ``ScalingDisabled`` is a target scaled to zero on purpose; at max: ``desiredReplicas >= maxReplicas`` or
    ``ScalingLimited`` True with ``TooManyReplicas``."""
    spec, status, conditions = hpa.get("spec") or {}, hpa.get("status") or {}, conditions_of(hpa)
    unable = {}
    for kind in ("AbleToScale", "ScalingActive"):
        condition = conditions.get(kind)
        if condition and condition.get("status") != "True" and condition.get("reason") != "ScalingDisabled":
            unable[kind] = f"{condition.get('reason')}: {condition.get('message', '')}"
    limited = conditions.get("ScalingLimited") or {}
    reason = limited.get("reason") if limited.get("status") == "True" else None
    desired, max_replicas = int(status.get("desiredReplicas") or 0), int(spec.get("maxReplicas") or 0)
    return Autoscaler(int(status.get("currentReplicas") or 0), desired, max_replicas, unable,
                      desired >= max_replicas or reason == "TooManyReplicas", reason)


def not_bound(claims: list[dict]) -> dict[str, str]:
    """PersistentVolumeClaims whose phase is not Bound: Pending (never bound) or Lost (its volume is gone)."""
    return {name_of(c): (c.get("status") or {}).get("phase") or "(no phase)" for c in claims
            if (c.get("status") or {}).get("phase") != "Bound"}


def days_until(text: str | None, now: datetime) -> float | None:
    moment = parse_time(text)
    return None if moment is None else round((moment - now).total_seconds() / 86400, 1)


def certificate_ready(certificate: dict) -> tuple[str, str]:
    """cert-manager's Ready condition: (status, "reason: message"); ("absent", ...) before its first sync."""
    ready = conditions_of(certificate).get("Ready")
    if ready is None:
        return "absent", "cert-manager has not judged it yet"
    return ready.get("status") or "Unknown", f"{ready.get('reason')}: {ready.get('message', '')}"


def pem_expiries(pem: bytes) -> list[tuple[str, datetime]]:
    """Each certificate of a PEM bundle (``tls.crt`` may hold the chain), leaf first: (subject, notAfter)."""
    from cryptography import x509

    return [(cert.subject.rfc4514_string(), cert.not_valid_after_utc) for cert in x509.load_pem_x509_certificates(pem)]
