"""The ``wait_healthy`` step: until the named targets answer as their checks expect, or their checks of a
``suite`` pass, within the step's timeout.

Without a suite each attempt asks every target once through its own probe (opsproof.probes, so the
checks' read-only sessions), each bounded by what is left of the step: an HTTP target's health path
answers its expected status and JSON fields, a PostgreSQL target answers and has its ``expect_role``,
MySQL and Redis answer a ping, a TCP port accepts, a host runs ``true``. That costs milliseconds a
round. With a suite, each attempt is an inner run of those targets' real checks (opsproof.drills.checks,
about 2 s): slower, and exactly what gates a deploy.
"""

from __future__ import annotations

import time

from opsproof.drills.runner import StepFailed
from opsproof.errors import ProbeError, first_line


def unhealthy(target, environment, seconds: float) -> str | None:
    """Why ``target`` is not healthy now (one probe, at most ``seconds``), or None when it is."""
    from opsproof.probes import open_probe

    limits = {key: min(getattr(target, key), max(0.2, seconds)) for key in ("timeout_s", "connect_timeout_s")
              if getattr(target, key, None) is not None}
    probe = open_probe(target.model_copy(update=limits), environment)
    try:
        return _judge(target, probe)
    except ProbeError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - any failure to answer is "not healthy yet"
        return f"{type(error).__name__}: {first_line(error)}"
    finally:
        if hasattr(probe, "close"):
            probe.close()


def _judge(target, probe) -> str | None:
    if target.kind == "http":
        health = target.health
        response = probe.get(health.path if health else "/")
        expected = health.status if health else None
        if expected is not None and response.status_code != expected:
            return f"status_code ({response.status_code}) == {expected}"
        if expected is None and response.status_code >= 500:
            return f"status_code ({response.status_code}) < 500"
        fields = {path: response.field(path, "<missing>") for path in (health.json_fields if health else {})}
        if health and fields != health.json_fields:
            return f"health_fields ({fields}) == {health.json_fields}"
        return None
    if target.kind == "postgres":
        role = probe.role()
        return f"role ({role!r}) == {target.expect_role!r}" if target.expect_role and role != target.expect_role \
            else None
    if target.kind == "tcp":
        state, _ = probe.connect()
        return None if state == "open" else f"port_state ({state!r}) == 'open'"
    if target.kind == "host":
        probe.run("true")
        return None
    probe.ping_ms()  # mysql, redis
    return None


def step(step, context):
    """The ``wait_healthy`` step's action."""
    targets = [context.target(ref) for ref in step.targets]

    def do(deadline: float | None) -> str:
        started = time.monotonic()
        if step.suite:
            from opsproof.drills.checks import wait_until_pass

            found, attempts = wait_until_pass(context.env_file, deadline, step.every, suite=step.suite,
                                              targets=step.targets)
            if not found.ok:
                raise StepFailed(f"not healthy within {step.timeout:g} s ({attempts} runs of the {step.suite} "
                                 f"checks): {found.summary()}")
            return (f"{step.suite} checks of {', '.join(step.targets)} passed after {time.monotonic() - started:.2f} s "
                    f"({attempts} runs)")
        attempts = 0
        while True:
            attempts += 1
            left = (deadline - time.monotonic()) if deadline is not None else 60.0
            problems = {t.where: why for t in targets if (why := unhealthy(t, context.environment, left))}
            if not problems:
                return f"healthy after {time.monotonic() - started:.2f} s ({attempts} attempts)"
            if deadline is not None and time.monotonic() + step.every >= deadline:
                said = "; ".join(f"{where}: {why}" for where, why in problems.items())
                raise StepFailed(f"not healthy within {step.timeout:g} s ({attempts} attempts): {said}")
            time.sleep(step.every)

    return do
