"""Evidence off the runner, against a real local S3 server (moto) with Object Lock: each run uploads its artifacts
and its record, readiness and verify read the store from a fresh checkout, concurrent runners never fork the
chain, and a store that is down costs nothing but a note until a later run catches up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from opsproof import history
from opsproof.environment.evidence_store import EvidenceStore as StoreSettings
from opsproof.history.store import EvidenceStore, catch_up
from opsproof.sandbox.processes import free_port, stop_pid, wait_for_port
from test_history import make_run

ROOT = Path(__file__).resolve().parent.parent
SECRET = "evidence-secret-key-42"


@pytest.fixture(scope="module")
def endpoint():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, 30, "moto_server", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_pid(process.pid)
        process.wait()


@pytest.fixture
def bucket(endpoint, monkeypatch, tmp_path):
    """A bucket of its own with Object Lock enabled (so versioned); credentials in the process environment."""
    monkeypatch.setenv("EVIDENCE_KEY_ID", "evidence-key-id")
    monkeypatch.setenv("EVIDENCE_SECRET", SECRET)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    name = f"evidence-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="evidence-key-id",
                          aws_secret_access_key=SECRET)
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return client, name


def store_section(endpoint: str, name: str, **extra) -> dict:
    return {"url": f"s3://{name}/audit", "s3": {"endpoint_url": endpoint, "access_key_id": "${EVIDENCE_KEY_ID}",
                                                 "secret_access_key": "${EVIDENCE_SECRET}", "timeout_s": 2}, **extra}


def project(directory: Path, store: dict) -> Path:
    (directory / "environments").mkdir(parents=True, exist_ok=True)
    env_file = directory / "environments" / "unit.yaml"
    env_file.write_text(yaml.safe_dump({"tier": "staging", "http": {}, "evidence_store": store}))
    (directory / "pytest.ini").write_text("[pytest]\nopsproof_env = unit\n")
    (directory / "test_checks.py").write_text("def test_ok(): pass\n")
    return env_file


def run(pytester):
    result = pytester.runpytest_inprocess("-p", "fixtures.plugin", "-p", "no:randomly")
    return result, result.stdout.str() + result.stderr.str()


def keys(client, name: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", []))


def cli(capsys, *args: str):
    from opsproof.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_each_run_uploads_its_artifacts_and_record_under_object_lock(pytester, endpoint, bucket):
    client, name = bucket
    project(pytester.path, store_section(endpoint, name, object_lock={"mode": "COMPLIANCE", "days": 1}))
    result, output = run(pytester)
    assert result.ret == 0, output
    (run_dir,) = [p for p in (pytester.path / "reports" / "unit").iterdir() if p.is_dir()]
    prefix = f"audit/unit/runs/{run_dir.name}/"
    assert keys(client, name) == ["audit/unit/history/0000000001.json",
                                  *(prefix + n for n in ("junit.xml", "report.html", "results.json"))]
    assert f"evidence     {run_dir.name} uploaded to s3://{name}/audit/unit/ (store history seq 1)" in output
    head = client.head_object(Bucket=name, Key=prefix + "results.json")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert timedelta(hours=23) < until - datetime.now(timezone.utc) <= timedelta(days=1)
    assert head["Metadata"]["sha256"] == history.sha256_file(run_dir / "results.json")
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=name, Key=prefix + "results.json", VersionId=head["VersionId"])
    (local,) = history.read(run_dir.parent / "history.jsonl")
    stored = json.loads(client.get_object(Bucket=name, Key="audit/unit/history/0000000001.json")["Body"].read())
    assert stored["source"]["hash"] == local["hash"] and stored["verdict"] == local["verdict"]
    assert [a["path"] for a in stored["artifacts"]] == [prefix.removeprefix("audit/unit/") + a["name"]
                                                        for a in local["artifacts"]]
    assert SECRET not in output and not [p for p in pytester.path.rglob("*") if p.is_file() and
                                         p.suffix != ".yaml" and SECRET.encode() in p.read_bytes()]


def test_readiness_and_verify_read_the_store_from_a_fresh_checkout(pytester, endpoint, bucket, capsys):
    client, name = bucket
    env_file = project(pytester.path, store_section(endpoint, name, object_lock={"mode": "GOVERNANCE", "days": 1}))
    for _ in range(2):
        assert run(pytester)[0].ret == 0
    shutil.rmtree(pytester.path / "reports")  # a fresh checkout: nothing of the runs is here

    code, out, err = cli(capsys, "readiness", "--env", str(env_file), "--reports-dir", str(pytester.path / "reports"),
                         "--format", "json", "--output", str(pytester.path / "r.json"))
    assert code == 0, out + err
    assert f"reading the history from the evidence store s3://{name}/audit/unit/" in err
    doc = json.loads((pytester.path / "r.json").read_text())
    assert doc["history"]["ok"] and doc["history"]["records"] == 2
    assert doc["history"]["path"] == f"s3://{name}/audit/unit/history/"
    assert [{a["status"] for a in r["artifacts"]} for r in doc["runs"]] == [{"verified"}, {"verified"}]
    assert [s["suite"] for s in doc["suites"]] == ["all"] and doc["suites"][0]["runs"] == 2

    code, out, _ = cli(capsys, "history", "verify", "--from-store", "--env", str(env_file))
    assert code == 0 and f"history intact: s3://{name}/audit/unit/history/ (2 records" in out
    client.put_object(Bucket=name, Key="audit/unit/history/0000000002.json", Body=b'{"seq": 2, "verdict": "PASS"}\n',
                      ChecksumAlgorithm="SHA256")  # a new version over a locked one: the old version stays
    code, out, _ = cli(capsys, "history", "verify", "--from-store", "--env", str(env_file))
    assert code == 1
    assert (f"TAMPERED s3://{name}/audit/unit/history/: s3://{name}/audit/unit/history/0000000002.json was written 2 "
            f"times (overwritten after it was written); the first version is used") in out
    assert out.count("TAMPERED") == 1  # the first version still verifies


def settings(endpoint: str, name: str) -> StoreSettings:
    return StoreSettings.model_validate({**store_section(endpoint, name), "s3": {
        "endpoint_url": endpoint, "access_key_id": "evidence-key-id", "secret_access_key": SECRET}})


def local_history(base: Path, runs: int) -> Path:
    path = base / "history.jsonl"
    for n in range(runs):
        history.append(path, history.record_for_run(make_run(base, f"{base.name}-run{n}"), path, base))
    return path


def test_runners_appending_at_the_same_moment_never_fork_or_lose_the_chain(endpoint, bucket, tmp_path):
    client, name = bucket
    runners = [local_history(tmp_path / f"runner{n}", 1) for n in range(8)]
    start = threading.Barrier(len(runners))
    done = []

    def upload(path: Path) -> None:
        store = EvidenceStore(settings(endpoint, name), "unit")
        start.wait()
        done.append(catch_up(store, path))

    threads = [threading.Thread(target=upload, args=(path,)) for path in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(d.error is None for d in done), [d.error for d in done]
    assert sorted(seq for d in done for _, seq in d.uploaded) == list(range(1, 9))
    mirror = tmp_path / "mirror"
    assert EvidenceStore(settings(endpoint, name), "unit").mirror(mirror) == []
    result = history.verify(mirror / "history.jsonl", runs_dir=mirror / "runs")
    assert result.ok and result.records == 8, result.problems
    sources = sorted(r["source"]["hash"] for r in history.read(mirror / "history.jsonl"))
    assert sources == sorted(history.read(path)[0]["hash"] for path in runners)
    assert len({r["artifacts"][0]["path"].split("/")[1] for r in history.read(mirror / "history.jsonl")}) == 8


def test_a_runner_that_loses_the_race_chains_after_the_winner(endpoint, bucket, tmp_path):
    """The loser read the head before the winner wrote: its conditional write of seq 2 gets 412."""
    client, name = bucket
    first, late = EvidenceStore(settings(endpoint, name), "unit"), EvidenceStore(settings(endpoint, name), "unit")
    catch_up(first, local_history(tmp_path / "a", 1))
    stale = late.head()
    catch_up(first, local_history(tmp_path / "b", 1))
    late.head = lambda after=0, real=late.head: stale if late.head.calls == [] and not late.head.calls.append(1) \
        else real(after)
    late.head.calls = []
    written = catch_up(late, local_history(tmp_path / "c", 1))
    assert written.uploaded and written.uploaded[0][1] == 3
    assert keys(client, name).count("audit/unit/history/0000000002.json") == 1
    versions = client.list_object_versions(Bucket=name, Prefix="audit/unit/history/")["Versions"]
    assert len(versions) == 3  # nothing was overwritten


def test_two_concurrent_runs_keep_one_chain(endpoint, bucket, tmp_path, capsys):
    client, name = bucket
    runners = [tmp_path / "runner-a", tmp_path / "runner-b"]
    env_files = [project(path, store_section(endpoint, name)) for path in runners]
    processes = [subprocess.Popen([sys.executable, "-m", "pytest", "-p", "fixtures.plugin", "-p", "no:cacheprovider",
                                   "-p", "no:randomly", "-q"], cwd=path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
                 for path in runners]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert keys(client, name)[:2] == ["audit/unit/history/0000000001.json", "audit/unit/history/0000000002.json"]
    code, out, _ = cli(capsys, "history", "verify", "--from-store", "--env", str(env_files[0]))
    assert code == 0 and "(2 records, chain and artifact hashes verified" in out, out


def test_a_store_that_is_down_keeps_the_runs_here_and_a_later_run_uploads_them(pytester, endpoint, bucket,
                                                                              refused_port, capsys):
    client, name = bucket
    env_file = project(pytester.path, store_section(f"http://127.0.0.1:{refused_port}", name))
    for pending in (1, 2):
        result, output = run(pytester)
        assert result.ret == 0, output  # the verdict does not depend on the store
        assert "opsproof: evidence store UNREACHABLE: upload runs/" in output
        assert f"the artifacts and history stay here, and {pending} run(s) will be uploaded by the next run" in output
    assert keys(client, name) == []
    env_file.write_text(env_file.read_text().replace(f"127.0.0.1:{refused_port}", endpoint.removeprefix("http://")))
    result, output = run(pytester)
    assert result.ret == 0 and f"evidence     3 runs uploaded to s3://{name}/audit/unit/ (store history seq 1-3)" \
        in output, output
    local = history.read(pytester.path / "reports" / "unit" / "history.jsonl")
    code, out, _ = cli(capsys, "history", "verify", "--from-store", "--env", str(env_file))
    assert code == 0, out
    mirror = Path(os.environ["XDG_CACHE_HOME"]) / "opsproof" / "evidence-store" / name / "audit" / "unit"
    assert [r["source"]["hash"] for r in history.read(mirror / "history.jsonl")] == [r["hash"] for r in local]


def test_a_store_that_does_not_answer_costs_its_timeout_once(pytester, endpoint, bucket, silent_port):
    client, name = bucket
    store = store_section(f"http://127.0.0.1:{silent_port}", name)
    project(pytester.path, {**store, "s3": {**store["s3"], "timeout_s": 1}})
    started = time.monotonic()
    result, output = run(pytester)
    took = time.monotonic() - started
    print(f"a run against a silent store took {took:.1f} s (timeout_s 1)")
    assert result.ret == 0 and "evidence store UNREACHABLE" in output and "Read timeout" in output, output
    assert took < 60


@pytest.mark.parametrize("store, problem", [
    ("ssh://backup/evidence", "evidence_store.url: String should match pattern"),
    ({"url": "s3://evidence/audit", "object_lock": {"mode": "FOREVER", "days": 1}},
     "evidence_store.object_lock.mode: Input should be 'GOVERNANCE' or 'COMPLIANCE'"),
    ({"url": "s3://evidence/audit", "object_lock": {"mode": "COMPLIANCE", "days": 0}},
     "evidence_store.object_lock.days: Input should be greater than or equal to 1"),
])
def test_a_store_the_run_cannot_use_is_refused_at_load(tmp_path, capsys, store, problem):
    env_file = tmp_path / "unit.yaml"
    env_file.write_text(yaml.safe_dump({"tier": "staging", "evidence_store": store}))
    code, out, err = cli(capsys, "validate", str(env_file))
    assert code == 4 and err.startswith(f"opsproof: {env_file}: {problem}"), err
