"""Hostile environment files: one line naming the file and key, exit 4, no hang (issue 18, items 2, 3, 9).

Each ran on the code before the fix into a hang (alias bombs at 9^9, /dev/zero), a traceback
(recursion, complex keys, Latin-1, UTF-16, a directory) or a silent misreading (.nan thresholds).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsproof.environment import load_environment
from opsproof.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
HEAD = "tier: sandbox\n"


def billion_laughs(levels: int = 9) -> str:
    """9 levels of 9 aliases: 387 M leaves once expanded, from about 500 bytes."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


CASES = {
    "alias bomb": (HEAD + "custom:\n" + "".join(f"  {line}\n" for line in billion_laughs().splitlines()),
                   "custom.l5: expands to more than 100000 values through aliases"),
    "recursive alias": (HEAD + "custom: &loop {again: *loop}\n",
                        "custom.again: a recursive alias (a list or mapping inside itself, line 2)"),
    "recursive list": (HEAD + "tcp: &x [*x]\n", "tcp.0: a recursive alias"),
    "deep nesting": (HEAD + "custom: " + "[" * 200 + "]" * 200 + "\n", "line 2: nested more than 64 levels deep"),
    "very deep nesting": (HEAD + "custom: " + "[" * 100_000 + "]" * 100_000 + "\n", "exceeded maximum nesting depth"),
    "complex key": (HEAD + "? [a, b]\n: 1\n", "a key must be plain text, not a list or mapping (line 2)"),
    "complex key in a target": (HEAD + "tcp:\n  ? {x: 1}\n  : {host: h, port: 1}\n",
                                "tcp: a key must be plain text, not a list or mapping (line 3)"),
    "inf threshold": (HEAD + "redis: {c: {url: 'redis://h:1/0', hit_rate_pct: {warn: .inf, crit: 40}}}\n",
                      "redis.c.hit_rate_pct.warn: .inf is not a finite number (line 2)"),
    "nan threshold": (HEAD + "redis: {c: {url: 'redis://h:1/0', hit_rate_pct: {warn: 70, crit: .nan}}}\n",
                      "redis.c.hit_rate_pct.crit: .nan is not a finite number (line 2)"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_environment_file_is_one_config_error(case, tmp_path):
    text, expected = CASES[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        load_environment(path, variables={})
    assert expected in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
    assert str(refused.value).startswith(str(path))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("encoding", "expected"), [
    ("latin-1", "line 2: the file is not UTF-8 (byte 0xe9); save it as UTF-8"),
    ("utf-16", "the file is UTF-16; save it as UTF-8"),
])
def test_a_file_not_in_utf8_is_named_with_its_line(encoding, expected, tmp_path):
    path = tmp_path / "legacy.yaml"
    path.write_bytes((HEAD + "description: café du réseau\n").encode(encoding))
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_environment(path, variables={})


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d: "/dev/zero", "vars_file: /dev/zero is not a regular file (a device, pipe or socket)"),
    (lambda d: str(d), "is a directory, not a file"),
    (lambda d: _binary(d), "the vars file holds a NUL byte: it is binary, not text"),
    (lambda d: _huge(d), "is larger than 4096 KiB"),
])
def test_a_vars_file_that_cannot_be_text_is_refused_at_once(make, expected, tmp_path):
    path = tmp_path / "vars.yaml"
    path.write_text(HEAD + f"vars_file: {make(tmp_path)}\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=re.escape(expected)) as refused:
        load_environment(path, variables={})
    assert "vars_file" in str(refused.value)
    assert time.monotonic() - started < 5  # /dev/zero: not read at all


def _binary(directory: Path) -> str:
    (directory / "vars.bin").write_bytes(b"A=1\n\x00\x01\x02")
    return str(directory / "vars.bin")


def _huge(directory: Path) -> str:
    with open(directory / "vars.big", "wb") as handle:
        handle.truncate(64 << 20)  # sparse: 64 MiB read as far as the limit, then refused
    return str(directory / "vars.big")


def test_a_waivers_file_at_dev_zero_is_refused():
    from opsproof import waivers

    with pytest.raises(ConfigError, match="/dev/zero is not a regular file"):
        waivers.load(Path("/dev/zero"))


def test_a_missing_or_unusable_history_dir_is_refused_at_load(tmp_path):
    path = tmp_path / "hist.yaml"
    path.write_text(HEAD + "history_dir: nowhere\n")
    with pytest.raises(ConfigError, match=r"history_dir: .*nowhere: no such directory"):
        load_environment(path, variables={})
    (tmp_path / "afile").write_text("")
    path.write_text(HEAD + "history_dir: afile\n")
    with pytest.raises(ConfigError, match=r"history_dir: .*afile is not a directory"):
        load_environment(path, variables={})


def test_a_read_only_history_dir_is_refused_at_load(tmp_path):
    """A read-only mount (root may write anywhere else); skipped where mounting is not allowed."""
    mount = tmp_path / "ro"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        path = tmp_path / "ro.yaml"
        path.write_text(HEAD + "history_dir: ro\n")
        with pytest.raises(ConfigError, match=r"history_dir: .*ro is not writable"):
            load_environment(path, variables={})
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_validate_of_an_alias_bomb_exits_4_in_one_line_with_bounded_time_and_memory(tmp_path):
    """The CLI end to end, in a child process so its peak RSS is its own (printed; bounds are generous)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(CASES["alias bomb"][0])
    script = ("import sys, time; from opsproof.cli import main; started = time.monotonic(); "
              "code = main(['validate', sys.argv[1]]); "
              "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')); "
              "print(f'elapsed_s={time.monotonic() - started:.2f} peak_rss_mb={hwm / 1024:.0f}'); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(f"\nvalidate alias bomb: {done.stdout.strip()}")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "expands to more than 100000 values" in done.stderr, done.stderr
    measured = dict(part.split("=") for part in done.stdout.split())
    assert float(measured["elapsed_s"]) < 10 and float(measured["peak_rss_mb"]) < 300


def test_a_path_too_long_to_look_up_is_a_config_error(tmp_path):
    """Found by the fuzzer (seed 7, mutant 1550): ``os.stat`` raises ENAMETOOLONG instead of saying "missing"."""
    long_name = "x" * 5000
    path = tmp_path / "long.yaml"
    for key, text in (("http.api.tls.ca_file", f"http: {{api: {{url: 'https://h', tls: {{ca_file: {long_name}}}}}}}\n"),
                      ("vars_file", f"vars_file: {long_name}\n"), ("history_dir", f"history_dir: {long_name}\n")):
        path.write_text(HEAD + text)
        with pytest.raises(ConfigError) as refused:
            load_environment(path, variables={})
        assert refused.value.key_path == key, str(refused.value)
