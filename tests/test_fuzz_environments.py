"""A seeded mutation fuzzer over the shipped environment files: every mutant validates (exit 0) or is
refused in one line (exit 4); never a traceback, never a hang (issue 18).

Mutants come from environments/**/*.yaml and any YAML under tests/, mutated as text (lines dropped,
repeated, swapped or cut, bytes flipped, hostile snippets inserted: alias bombs, recursive aliases,
complex keys, tabs, Latin-1 bytes, a UTF-16 mark) and as data (a value replaced by a hostile one:
.inf, .nan, -1, 10**30, "", null, lists and mappings where scalars belong, unknown keys). ``opsproof
validate`` runs in this process, so a few hundred mutants take seconds. OPSPROOF_FUZZ_SEED and
OPSPROOF_FUZZ_MUTANTS change the seed and the count (a failure names the seed and the mutant to replay).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from opsproof import cli

ROOT = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("OPSPROOF_FUZZ_SEED", "18"))
MUTANTS = int(os.environ.get("OPSPROOF_FUZZ_MUTANTS", "300"))
PER_MUTANT_S = 5  # a hang: far above the ~10 ms a mutant takes

SNIPPETS = [
    "bomb: &a0 [x, x, x, x, x, x, x, x, x]\nb1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n"
    "b2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\nb3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n"
    "b4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\nb5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n",
    "loop: &loop [*loop]\n", "? [a, b]\n: 1\n", "? {x: 1}\n: y\n", "deep: " + "[" * 80 + "]" * 80 + "\n",
    "\tbad: tab\n", "key: *undefined_alias\n", "x: !!python/object:os.system [ls]\n", "---\nsecond: doc\n",
    "1: one\n", "null: nothing\n", "true: yes\n", "vars_file: /dev/zero\n", "vars_file: /\n",
    "history_dir: /nonexistent/dir\n", "waivers_file: /dev/zero\n", "name: [not, text]\n", "tier: [x]\n",
    "severity: .nan\n", "custom: .inf\n",
]
VALUES = [float("inf"), float("nan"), -1, 0, 10**30, "", None, [], {}, [[]], {"k": {}}, True, "${UNSET_FUZZ_VAR}",
          "x" * 5000, "30s", "-5m", "7d", "ssh://host/path", "*", "\x00", 1.5e308, "https://", "p9"]


def seeds() -> dict[str, str]:
    files = sorted(ROOT.glob("environments/**/*.yaml")) + sorted(ROOT.glob("tests/**/*.yaml"))
    texts = {}
    for path in files:
        if ".waivers." in path.name:
            continue
        text = path.read_text(encoding="utf-8")
        texts[str(path.relative_to(ROOT))] = re.sub(r"(?m)^vars_file:.*$", "", text)  # ${VAR}s come from os.environ
    return texts


def _text_mutation(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    choice = rng.randrange(9)
    at = rng.randrange(len(lines))
    if choice == 0:
        del lines[at]
    elif choice == 1:
        lines.insert(at, lines[rng.randrange(len(lines))])
    elif choice == 2:
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
    elif choice == 3:
        return text[:rng.randrange(len(text) + 1)]
    elif choice == 4:
        position = rng.randrange(len(text) + 1)
        return text[:position] + rng.choice(":-[]{}&*!|>'\"#%@`,?\t\n ") + text[position:]
    elif choice == 5:
        lines.insert(at, rng.choice(SNIPPETS) if rng.random() < 0.7 else "  " + rng.choice(SNIPPETS))
    elif choice == 6:
        lines[at] = " " * rng.randrange(1, 5) + lines[at]
    elif choice == 7:
        return rng.choice(["\ufeff", "caf\xe9: 1\n"]) + text
    else:
        lines[at] = lines[at].lstrip(" ")
    return "".join(lines)


def _data_mutation(rng: random.Random, data):
    """Replace, delete or add one value somewhere in the parsed document."""
    holders = []

    def walk(node):
        if isinstance(node, dict):
            holders.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            holders.append(node)
            for value in node:
                walk(value)

    walk(data)
    holder = rng.choice(holders)
    if isinstance(holder, dict) and holder:
        key = rng.choice(list(holder))
        action = rng.randrange(3)
        if action == 0:
            holder[key] = rng.choice(VALUES)
        elif action == 1:
            del holder[key]
        else:
            holder[rng.choice(["unknwon_key", "timeout", key + "_s", "warn", "crit"])] = rng.choice(VALUES)
    elif isinstance(holder, list) and holder:
        holder[rng.randrange(len(holder))] = rng.choice(VALUES)
    return data


def mutant(rng: random.Random, text: str) -> tuple[bytes, str]:
    """(bytes of the mutated file, what was done)."""
    if rng.random() < 0.5:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            for _ in range(rng.randrange(1, 3)):
                data = _data_mutation(rng, data)
            return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8"), "data"
    mutated = text
    for _ in range(rng.randrange(1, 4)):
        mutated = _text_mutation(rng, mutated)
    if rng.random() < 0.05:
        return mutated.encode("utf-16"), "text, utf-16"
    if rng.random() < 0.05:
        return mutated.encode("latin-1", errors="replace"), "text, latin-1"
    return mutated.encode("utf-8", errors="surrogatepass"), "text"


def _plausible(name: str, directory: Path) -> str:
    """A value of the shape the variable's name promises, so unmutated seeds validate and mutants go deep."""
    if name.endswith("CA_FILE"):
        from opsproof.sandbox.https import issue, write_pair

        return str(write_pair(issue("fuzz CA", [], days=30, ca=True), directory, "ca")[0])
    shapes = {"REDIS_URL": "redis://127.0.0.1:1/0", "HTTPS_URL": "https://127.0.0.1:1", "URL": "http://127.0.0.1:1",
              "PORT": "5432", "DSN": "postgresql://fuzz@127.0.0.1:1/db", "DIR": str(directory)}
    return next((value for suffix, value in shapes.items() if name.endswith(suffix)),
                f"fuzz-value-{name.lower()}-0123456789")


class Hang(Exception):
    pass


def _validate(path: Path) -> tuple[int, str, str]:
    """``opsproof validate PATH`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()

    def hung(signum, frame):
        raise Hang(f"no answer within {PER_MUTANT_S} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(PER_MUTANT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["validate", str(path)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def test_every_mutant_validates_or_is_refused_in_one_line(tmp_path, monkeypatch):
    texts = seeds()
    assert texts, "no environment files to mutate"
    for name in {n for text in texts.values() for n in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)}:
        monkeypatch.setenv(name, _plausible(name, tmp_path))
    monkeypatch.chdir(tmp_path)
    rng = random.Random(SEED)
    started = time.monotonic()
    codes = {0: 0, 4: 0}
    for index in range(MUTANTS):
        seed_name = rng.choice(sorted(texts))
        data, how = mutant(rng, texts[seed_name])
        directory = tmp_path / f"m{index}"
        directory.mkdir()
        path = directory / Path(seed_name).name
        path.write_bytes(data)
        replay = f"seed {SEED}, mutant {index} of {seed_name} ({how}): {path}"
        try:
            code, out, err = _validate(path)
        except Hang as hang:
            pytest.fail(f"{replay}: {hang}")
        except BaseException as error:  # noqa: BLE001 - a traceback is the defect this test looks for
            pytest.fail(f"{replay}: {type(error).__name__}: {error}")
        assert code in (0, 4), f"{replay}: exit {code}\n{out}{err}"
        assert "Traceback" not in out + err, f"{replay}\n{err}"
        if code == 4:
            assert err.count("\n") == 1 and err.startswith("opsproof: "), f"{replay}: not one line:\n{err}"
        codes[code] += 1
    elapsed_s = time.monotonic() - started
    print(f"\nfuzzed {MUTANTS} mutants of {len(texts)} files (seed {SEED}) in {elapsed_s:.1f} s: "
          f"{codes[0]} valid, {codes[4]} refused")
    assert codes[4] > 0 and elapsed_s < 0.4 * MUTANTS  # about 0.05 s each; a slow walk is a defect too
