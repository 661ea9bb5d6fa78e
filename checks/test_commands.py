"""Commands a runbook types on a host (``pm2 status``, ``php artisan horizon:status``), judged on their exit
code, output, JSON fields, a number and their time; evidence names each command, never its text."""

import re

import pytest

from opsproof.output import field, last_line, number, parse_json

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]

OUTPUT_TAIL_CHARS = 2000


@pytest.mark.p1
def test_command_output_as_expected(host_target, host_command, host, evidence):
    name = host_command.name
    ran = host.command(host_command)
    evidence.within(f"{name} duration_s", round(ran.took_s, 3), host_command.duration_s)
    evidence.record(f"{name} output_tail", ran.stdout[-OUTPUT_TAIL_CHARS:] + ran.stderr[-500:])
    exit_code = ran.code if ran.code is not None else f"none: stopped at its timeout of {host_command.timeout_s:g} s"
    if host_command.exit_code is not None or ran.code is None:
        evidence.require(f"{name} exit_code", exit_code, "==", host_command.exit_code or 0,
                         note=last_line(ran.stderr) or last_line(ran.stdout) or None)
    if host_command.stdout is not None:
        evidence.expect(f"{name} stdout_matches", bool(re.search(host_command.stdout, ran.stdout, re.MULTILINE)),
                        "==", True, note=f"/{host_command.stdout}/")
    if host_command.stdout_absent is not None:
        evidence.expect(f"{name} stdout_matches_absent",
                        bool(re.search(host_command.stdout_absent, ran.stdout, re.MULTILINE)), "==", False,
                        note=f"/{host_command.stdout_absent}/")
    if host_command.json_fields or (host_command.number and host_command.number.json_path):
        evidence.require(f"{name} output_bytes", ran.stdout_bytes, "<=", host_command.max_output_bytes,
                         note="JSON is read whole")
        parsed = parse_json(ran.stdout)
        evidence.require(f"{name} output_is_json", parsed is not None, "==", True)
        for path, expected in host_command.json_fields.items():
            evidence.expect(f"{name} {path}", field(parsed, path), "==", expected)
    if host_command.number is not None:
        limit = host_command.number
        value = number(ran.stdout, limit.regex, limit.json_path)
        if evidence.expect(f"{name} {limit.measure}_found", value is not None, "==", True,
                           note=f"/{limit.regex}/" if limit.regex else limit.json_path):
            evidence.within(f"{name} {limit.measure}", value, limit.threshold)
