"""Tamper-evidence for real: each way of rewriting the history, against an unsigned history and a signed one
whose key the verifier pins; records of the wrong shape; signing at run time without the key leaking."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opsproof import history
from opsproof.history import signing
from opsproof.readiness import compose, render

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SIGNATURE_BROKEN = "signature does not verify (changed after it was signed, or not signed by its key)"


def make_key(path: Path) -> signing.Signer:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return signing.load_signer(str(path), None)


def drill(when: datetime) -> dict:
    return {"kind": "dr", "scenario": "outage", "target": "fresh cluster", "started_at": when.isoformat(),
            "finished_at": when.isoformat(), "rto_target_s": 120, "rto_achieved_s": 4.2, "rpo_target_s": 3600,
            "rpo_achieved_s": 60.0, "verifications": [], "steps": [], "cleanup_confirmed": True, "outcome": "passed"}


def add_run(base: Path, name: str, suite: str = "smoke", signer=None, checks=None, when: datetime = NOW) -> None:
    run_dir = base / name
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({
        "schema_version": 2, "environment": {"name": "unit", "tier": "staging"}, "suite": suite,
        "started_at": when.isoformat(), "finished_at": (when + timedelta(seconds=5)).isoformat(), "exit_code": 0,
        "verdict": "PASS (gate p1)", "checks": checks or [{"id": "checks/test_x.py::test_ok", "outcome": "passed"}]}))
    (run_dir / "junit.xml").write_text("<testsuites/>")
    path = base / "history.jsonl"
    history.append(path, history.record_for_run(run_dir, path, base), signer)


def keep(tmp_path: Path, signed: bool):
    """Four runs (the third a DR drill), unsigned or signed with a key the verifier pins."""
    signer = make_key(tmp_path / "key.pem") if signed else None
    base = tmp_path / "reports" / "unit"
    for n, suite in enumerate(("smoke", "nightly", "dr", "smoke"), 1):
        checks = [{"id": "checks/test_dr.py::test_dr_drill", "outcome": "passed",
                   "drill": drill(NOW - timedelta(days=400))}] if suite == "dr" else None
        add_run(base, f"run{n}", suite, signer, checks, NOW - timedelta(days=5 - n))
    trust = history.Trust((signer.fingerprint,), "history_public_key") if signer else history.Trust()
    return base / "history.jsonl", signer, trust


@pytest.fixture(params=["unsigned", "signed"])
def kept(request, tmp_path):
    return keep(tmp_path, request.param == "signed")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path: Path, records: list[dict], renumber: bool = True) -> None:
    """What someone without the key can do: renumber, re-chain and rehash every record (signatures stay as they were)."""
    previous = history.GENESIS
    for seq, record in enumerate(records, 1):
        record.update(prev_hash=previous, **({"seq": seq} if renumber else {}))
        record["hash"] = previous = history.record_hash(record)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def edited_verdict(path: Path, signer) -> None:
    records = lines(path)
    records[1]["verdict"] = "PASS (gate p1): edited"
    rewrite(path, records)


def deleted_run(path: Path, signer) -> None:
    records = lines(path)
    for artifact in records[1]["artifacts"]:
        (path.parent / artifact["path"]).unlink()
    (path.parent / "run2").rmdir()
    rewrite(path, records[:1] + records[2:])


def edited_results(path: Path, signer) -> None:
    results = path.parent / "run3" / "results.json"
    results.write_text(results.read_text().replace('"rto_achieved_s": 4.2', '"rto_achieved_s": 1.0'))
    records = lines(path)
    next(a for a in records[2]["artifacts"] if a["name"] == "results.json")["sha256"] = history.sha256_file(results)
    rewrite(path, records)


def forged_drill(path: Path, signer) -> None:
    add_run(path.parent, "run5-forged", "dr", checks=[{"id": "checks/test_dr.py::test_dr_drill", "outcome": "passed",
                                                      "drill": drill(NOW - timedelta(days=1))}])


def emptied(path: Path, signer) -> None:
    path.write_bytes(b"")


FORMS = {edited_verdict: ([], [2, 3, 4]), deleted_run: ([], [2, 3]), edited_results: ([], [3, 4]),
         forged_drill: ([], ["line 5: not signed, after signed records (forged, or written without the key)"]),
         emptied: (None, None)}


@pytest.mark.parametrize("tamper", FORMS, ids=[f.__name__ for f in FORMS])
def test_each_tampering_form_with_and_without_a_key(kept, tamper):
    """Without a key only an emptied history is caught: anyone who can write the file can recompute every hash.
    With a pinned key every form is caught, each at the line it changed."""
    path, signer, trust = kept
    assert history.verify(path, runs_dir=path.parent, trust=trust).ok
    tamper(path, signer)
    result = history.verify(path, runs_dir=path.parent, trust=trust)
    unsigned, signed = FORMS[tamper]
    if tamper is emptied:
        assert result.problems == [f"{path}: the history is empty, but 4 run folder(s) beside it have results "
                                   f"(emptied or replaced?)"] + [
            f"run folder run{n} has no history record (a record removed from the end, or a run that was not recorded)"
            for n in range(1, 5)]
    elif signer is None:
        assert result.problems == unsigned  # not detected: the README says so
    else:
        assert result.problems == [p if isinstance(p, str) else f"line {p}: {SIGNATURE_BROKEN}" for p in signed]


def test_a_forged_drill_is_not_shown_as_evidence_when_the_key_is_pinned(tmp_path):
    path, signer, trust = keep(tmp_path, signed=True)
    forged_drill(path, signer)
    other = make_key(tmp_path / "other.pem")
    add_run(path.parent, "run6-forged", "dr", other, [{"id": "checks/test_dr.py::test_dr_drill", "outcome": "passed",
                                                        "drill": drill(NOW - timedelta(hours=1))}])
    result = history.verify(path, trust=trust)
    assert result.problems[-1] == f"line 6: signed by {other.fingerprint}, not by the pinned key {signer.fingerprint}"
    env_file = tmp_path / "unit.yaml"
    env_file.write_text("tier: staging\n")
    from opsproof.history.commands import Source

    source = Source({"name": "unit", "tier": "staging"}, env_file, path, path.parent, path.parent.parent, trust)
    doc = compose(source.settings, env_file, path, now=NOW, source=source)
    assert doc["drills"]["dr"]["finished_at"] == (NOW - timedelta(days=400)).isoformat()  # the real, old one
    assert "no DR drill in the last 365 days" in doc["missing"]
    assert not doc["history"]["ok"] and "HISTORY VERIFICATION FAILED" in render(doc, "html")


def test_a_signed_history_without_a_pin_catches_edits_but_not_a_rewrite_without_signatures(tmp_path):
    signer = make_key(tmp_path / "key.pem")
    for n in range(1, 4):
        add_run(tmp_path, f"run{n}", signer=signer)
    path = tmp_path / "history.jsonl"
    records = lines(path)
    records[1]["verdict"] = "edited"
    rewrite(path, [dict(r) for r in records])
    assert history.verify(path).problems == [f"line {n}: {SIGNATURE_BROKEN}" for n in (2, 3)]
    stripped = [{k: v for k, v in r.items() if k not in ("signature", "signed_by", "public_key")} for r in records]
    rewrite(path, stripped)
    assert history.verify(path).ok  # the key of the first signed record is all an unpinned verifier has
    pinned = history.Trust((signer.fingerprint,), "history_public_key")
    assert history.verify(path, trust=pinned).problems == [
        f"no record is signed, but history_public_key pins {signer.fingerprint}"]


@pytest.mark.parametrize("field, value, problem", [
    ("seq", "2", "seq: Input should be a valid integer"),
    ("counts", {"passed": "many"}, "counts.passed: Input should be a valid integer"),
    ("artifacts", "none", "artifacts: Input should be a valid list"),
    ("started_at", 20261123, "started_at: Input should be a valid string"),
    ("verdict", None, "verdict: Input should be a valid string"),
])
def test_a_record_with_a_wrong_type_is_reported_not_a_crash(tmp_path, capsys, field, value, problem):
    for n in range(1, 4):
        add_run(tmp_path / "reports" / "unit", f"run{n}")
    path = tmp_path / "reports" / "unit" / "history.jsonl"
    records = lines(path)
    records[1][field] = value
    rewrite(path, records, renumber=False)
    assert f"line 2: {problem}" in history.verify(path).problems
    env_file = tmp_path / "unit.yaml"
    env_file.write_text("tier: staging\n")
    for command in (["history", "verify"], ["readiness", "--output", str(tmp_path / "r.html")]):
        result = cli(capsys, *command, "--env", str(env_file), "--reports-dir", str(tmp_path / "reports"))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"line 2: {problem}" in result.stdout


ENV = """\
tier: staging
http: {}
history_signing_key: %s
history_public_key: %s
"""


def project(pytester, key: str, pin: str) -> Path:
    pytester.makefile(".ini", pytest="[pytest]\nopsproof_env = unit\n")
    (pytester.path / "environments").mkdir(exist_ok=True)
    (pytester.path / "environments" / "unit.yaml").write_text(ENV % (key, pin))
    pytester.makepyfile(test_checks="def test_ok(): pass\n")
    return pytester.path / "environments" / "unit.yaml"


def cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """``opsproof`` in this process (as a CompletedProcess): its output is what a terminal shows."""
    from opsproof.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_runs_sign_their_records_and_the_key_never_reaches_an_artifact(pytester, monkeypatch, capsys):
    signer = make_key(pytester.path / "history.pem")
    pem = (pytester.path / "history.pem").read_text()
    public = pytester.path / "history.pub"
    public.write_text(signer.public_key + " ops@example\n")
    env_file = project(pytester, "../history.pem", "../history.pub")
    assert pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly").ret == 0
    env_file.write_text(ENV % ("${HISTORY_SIGNING_KEY}", signer.fingerprint))  # the key itself, from the environment
    monkeypatch.setenv("HISTORY_SIGNING_KEY", pem)
    result = pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly")
    assert result.ret == 0
    reports = pytester.path / "reports"
    first, second = history.read(reports / "unit" / "history.jsonl")
    assert first["signed_by"] == second["signed_by"] == signer.fingerprint and signing.signature_holds(second)
    body = pem.split("-----")[2].strip().splitlines()[0]
    written = [p for p in reports.rglob("*") if p.is_file()]
    assert len(written) > 6 and not [p for p in written if body.encode() in p.read_bytes()]
    assert body not in result.stdout.str() + result.stderr.str()

    verified = cli(capsys, "history", "verify", "--env", str(env_file), "--reports-dir", str(reports))
    assert verified.returncode == 0, verified.stdout
    assert (f"2 of 2 records signed; signatures verified against the pinned key {signer.fingerprint} "
            f"(history_public_key in {env_file})") in verified.stdout
    other = make_key(pytester.path / "other.pem")
    refused = cli(capsys, "history", "verify", "--env", str(env_file), "--reports-dir", str(reports), "--public-key",
                  other.public_key)
    assert refused.returncode == 1
    assert f"line 1: signed by {signer.fingerprint}, not by the pinned key {other.fingerprint}" in refused.stdout
    ready = cli(capsys, "readiness", "--env", str(env_file), "--reports-dir", str(reports), "--format", "md", "--output",
                str(pytester.path / "r.md"))
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert f"Signatures: 2 of 2 records signed; signatures verified against the pinned key {signer.fingerprint}" in \
        (pytester.path / "r.md").read_text()


@pytest.mark.parametrize("key, message", [
    ("missing.pem", "history_signing_key: missing.pem: cannot read the key file (No such file or directory)"),
    ("rsa.pem", "history_signing_key: rsa.pem: an RSAPrivateKey, not an Ed25519 key (make one with: ssh-keygen"),
    ("garbage.pem", "history_signing_key: garbage.pem: not an unencrypted Ed25519 private key in PEM or OpenSSH"),
])
def test_a_key_that_cannot_sign_stops_the_run_before_anything_runs(pytester, capsys, key, message):
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pytester.path / "environments").mkdir()
    (pytester.path / "environments" / "rsa.pem").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (pytester.path / "environments" / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    env_file = project(pytester, key, "SHA256:x")
    result = pytester.runpytest_inprocess("-p", "fixtures.plugin")
    assert result.ret == 4 and not (pytester.path / "reports").exists()
    (line,) = [line for line in result.stderr.lines if line.strip()]
    assert line.startswith(f"ERROR: {env_file}: {message}") or line.startswith(f"ERROR: environments/unit.yaml: "
                                                                                f"{message}"), line
    validated = cli(capsys, "validate", str(env_file))
    assert validated.returncode == 4 and message in validated.stderr
