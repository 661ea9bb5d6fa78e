"""PM2's apps as ``pm2 jlist`` reports them, asked without ever starting a daemon.

Any pm2 command, even ``pm2 --version``, spawns PM2's God daemon for its PM2_HOME when none runs; on a
production host that would start a process manager where there was none. So the daemon's pid file is
read first and the process signalled with 0; only a live daemon is asked. The first ``jlist`` on a fresh
home prints a banner before the JSON, so the JSON is the last line of the output.

>>> apps(json.dumps([{"name": "web", "pid": 7, "pm2_env": {"status": "online", "restart_time": 2},
...                   "monit": {"memory": 52428800, "cpu": 1.5}}]))
[{'name': 'web', 'status': 'online', 'restarts': 2, 'memory_mb': 50.0, 'cpu_pct': 1.5, 'pid': 7}]
"""

from __future__ import annotations

import json
import shlex

from opsproof.errors import ProbeError, first_line

NO_DAEMON = "opsproof: no pm2 daemon"


def _command(pm2) -> str:
    home = shlex.quote(pm2.home) if pm2.home else '"${PM2_HOME:-$HOME/.pm2}"'
    return (f"H={home}; [ -f \"$H/pm2.pid\" ] && kill -0 \"$(cat \"$H/pm2.pid\")\" 2>/dev/null "
            f"|| {{ echo '{NO_DAEMON}'; exit 0; }}; PM2_HOME=\"$H\" exec {pm2.command} jlist")


def apps(output: str) -> list[dict]:
    """One row per app: name, status, restarts (``restart_time``), memory_mb (RSS), cpu_pct, pid."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    try:
        listed = json.loads(lines[-1]) if lines else None
    except ValueError:
        listed = None
    if not isinstance(listed, list):
        raise ProbeError(f"pm2 jlist: not a JSON list: {first_line(ValueError(lines[-1] if lines else '(nothing)'))}")
    rows = []
    for app in listed:
        env, monit = app.get("pm2_env") or {}, app.get("monit") or {}
        rows.append({"name": app.get("name"), "status": env.get("status"), "restarts": env.get("restart_time", 0),
                     "memory_mb": round((monit.get("memory") or 0) / 2**20, 1), "cpu_pct": monit.get("cpu") or 0,
                     "pid": app.get("pid")})
    return rows


def jlist(shell, pm2) -> list[dict] | None:
    """The apps, or None when no PM2 daemon runs for that home (none is started)."""
    ran = shell.run(_command(pm2), pm2.timeout_s, keep_bytes=4 << 20, head=True)
    if ran.code is None:
        raise ProbeError(f"pm2 jlist: no answer within {pm2.timeout_s:g} s")
    if ran.code != 0:
        raise ProbeError(f"pm2 jlist: exit {ran.code}: {first_line(ValueError(ran.stderr or ran.stdout or '?'))}")
    if ran.stdout.strip() == NO_DAEMON:
        return None
    return apps(ran.stdout)
