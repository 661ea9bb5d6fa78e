"""Pure judgements over Pod and container objects (dicts as the API returns them).

Popeye / kube-score style: what a person reading ``kubectl get pods -o yaml`` would call unhealthy,
each returned as ``{"pod/container": detail}`` so evidence names exactly what is wrong.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

BAD_WAITING = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
               "CreateContainerError", "InvalidImageName", "RunContainerError")
GOOD_PHASES = ("Running", "Succeeded")


def _name(pod: dict) -> str:
    return (pod.get("metadata") or {}).get("name", "")


def _statuses(pod: dict) -> list[dict]:
    status = pod.get("status") or {}
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def not_ready(pods: list[dict]) -> list[str]:
    """Pods whose Ready condition is not True (a pod without conditions is not ready either)."""
    names = []
    for pod in pods:
        conditions = (pod.get("status") or {}).get("conditions") or []
        ready = [c for c in conditions if c.get("type") == "Ready"]
        if not ready or ready[0].get("status") != "True":
            names.append(_name(pod))
    return names


def restarts(pods: list[dict]) -> dict[str, int]:
    return {f"{_name(p)}/{s.get('name')}": int(s.get("restartCount") or 0) for p in pods for s in _statuses(p)}


def waiting(pods: list[dict]) -> dict[str, str]:
    """Containers stuck waiting for a reason that will not clear by itself."""
    found = {}
    for pod in pods:
        for status in _statuses(pod):
            reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
            if reason in BAD_WAITING:
                found[f"{_name(pod)}/{status.get('name')}"] = reason
    return found


def oom_killed(pods: list[dict]) -> dict[str, str]:
    """Containers whose last termination was the kernel's OOM killer."""
    found = {}
    for pod in pods:
        for status in _statuses(pod):
            terminated = (status.get("lastState") or {}).get("terminated") or {}
            if terminated.get("reason") == "OOMKilled":
                found[f"{_name(pod)}/{status.get('name')}"] = terminated.get("finishedAt") or "OOMKilled"
    return found


def bad_phases(pods: list[dict]) -> dict[str, str]:
    return {_name(p): (p.get("status") or {}).get("phase", "Unknown") for p in pods
            if (p.get("status") or {}).get("phase") not in GOOD_PHASES}


def image_tag(image: str) -> str | None:
    """``reg:5000/app:1.4.3`` -> ``1.4.3``; a digest-pinned image gives ``@sha256:...``; no tag -> None."""
    if "@" in image:
        return "@" + image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def running_tags(pods: list[dict], container: str | None) -> dict[str, str | None]:
    """The tag each container runs, from the pod's spec (status images may be digests or registry-expanded)."""
    found = {}
    for pod in pods:
        for spec in (pod.get("spec") or {}).get("containers") or []:
            if container is None or spec.get("name") == container:
                found[f"{_name(pod)}/{spec.get('name')}"] = image_tag(spec.get("image", ""))
    return found


def _containers(workload: dict) -> list[dict]:
    return ((((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []


def unpinned_images(workload: dict) -> dict[str, str]:
    """Containers whose image has no tag or the ``latest`` tag: what runs can change under you."""
    return {c.get("name"): c.get("image", "") for c in _containers(workload)
            if image_tag(c.get("image", "")) in (None, "latest")}


def missing_probes(workload: dict) -> dict[str, list[str]]:
    found = {}
    for c in _containers(workload):
        absent = [p for p in ("livenessProbe", "readinessProbe") if not c.get(p)]
        if absent:
            found[c.get("name")] = absent
    return found


def missing_resources(workload: dict) -> dict[str, list[str]]:
    found = {}
    for c in _containers(workload):
        resources = c.get("resources") or {}
        absent = [f"{kind}.{res}" for kind in ("requests", "limits") for res in ("cpu", "memory")
                  if not (resources.get(kind) or {}).get(res)]
        if absent:
            found[c.get("name")] = absent
    return found


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def recent_warnings(events: list[dict], names: set[str], prefixes: tuple[str, ...], window_min: float,
                    now: datetime | None = None) -> list[str]:
    """Warning events about the workload or its pods/replica sets seen within the window."""
    since = (now or datetime.now(timezone.utc)) - timedelta(minutes=window_min)
    found = []
    for event in events:
        involved = (event.get("involvedObject") or event.get("regarding") or {}).get("name", "")
        if event.get("type") != "Warning" or not (involved in names or involved.startswith(prefixes)):
            continue
        seen = parse_time(event.get("lastTimestamp") or event.get("eventTime")
                          or (event.get("metadata") or {}).get("creationTimestamp"))
        if seen is None or seen >= since:
            found.append(f"{involved}: {event.get('reason')}: {event.get('message', '')}".strip())
    return found
