"""Velero backup sets through the real kubernetes client against an emulated API server.

No cluster (and so no Velero) can run here: as in test_kubernetes_checks.py, a loopback
pytest-httpserver answers the paths the client calls for velero.io/v1 custom resources with JSON
shaped like Velero 1.13's Backup, Schedule and BackupStorageLocation objects. Each fault is a
different answer from that server. Times are built from the test's own clock, not at import.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client as _client, config as _config  # noqa: F401 - loaded once, kept across runs
from werkzeug import Response

from opsproof.cli import main
from opsproof.environment import load_environment
from opsproof.errors import ConfigError
from test_kubernetes_checks import write_kubeconfig

NS = "velero"
BASE = f"/apis/velero.io/v1/namespaces/{NS}"
CHECKS = ("test_velero_latest_backup_completed", "test_velero_latest_completed_backup_within_rpo",
          "test_velero_latest_backup_errors_within_limit", "test_velero_latest_backup_warnings_within_limit",
          "test_velero_latest_completed_backup_not_expired", "test_velero_storage_location_available",
          "test_velero_schedule_enabled_and_recent")


def ts(ago: timedelta) -> str:
    return (datetime.now(timezone.utc) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup(started_ago: timedelta, phase: str = "Completed", took: timedelta = timedelta(minutes=9),
           schedule: str = "daily", **status) -> dict:
    """A Backup as ``kubectl get backup -o json`` shows one; warnings/errors are omitted when 0, as Velero does."""
    started = datetime.now(timezone.utc) - started_ago
    name = f"{schedule}-{started:%Y%m%d%H%M%S}"
    finished = phase in ("Completed", "PartiallyFailed", "Failed")
    body = {"phase": phase, "version": 1, "formatVersion": "1.1.0", "expiration": ts(started_ago - timedelta(days=30)),
            "startTimestamp": ts(started_ago), "progress": {"itemsBackedUp": 812, "totalItems": 812}}
    if finished:
        body["completionTimestamp"] = ts(started_ago - took)
    body.update(status)
    return {
        "apiVersion": "velero.io/v1", "kind": "Backup",
        "metadata": {"name": name, "namespace": NS, "uid": f"7c1f{int(started.timestamp())}", "generation": 5,
                     "resourceVersion": "913204", "creationTimestamp": ts(started_ago),
                     "labels": {"velero.io/schedule-name": schedule, "velero.io/storage-location": "default"},
                     "annotations": {"velero.io/source-cluster-k8s-gitversion": "v1.29.4"}},
        "spec": {"includedNamespaces": ["*"], "storageLocation": "default", "ttl": "720h0m0s",
                 "volumeSnapshotLocations": ["default"], "defaultVolumesToFsBackup": False,
                 "csiSnapshotTimeout": "10m0s", "itemOperationTimeout": "4h0m0s", "hooks": {}, "metadata": {}},
        "status": body,
    }


def daily_history(latest_started_ago: timedelta = timedelta(hours=2, minutes=9)) -> list[dict]:
    """Three nightly backups, the newest started ``latest_started_ago`` (and finished 9 minutes later)."""
    return [backup(latest_started_ago + timedelta(days=days)) for days in (2, 1, 0)]


def storage_location(validated_ago: timedelta = timedelta(seconds=40), phase: str = "Available", **status) -> dict:
    return {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": NS, "generation": 1, "resourceVersion": "913100"},
            "spec": {"provider": "aws", "default": True, "accessMode": "ReadWrite",
                     "objectStorage": {"bucket": "velero-prod", "prefix": "cluster"},
                     "config": {"region": "eu-west-1", "s3ForcePathStyle": "true"}},
            "status": {"phase": phase, "lastValidationTime": ts(validated_ago), "lastSyncedTime": ts(validated_ago),
                       **status}}


def schedule(last_backup_ago: timedelta = timedelta(hours=2, minutes=9), paused: bool = False) -> dict:
    return {"apiVersion": "velero.io/v1", "kind": "Schedule",
            "metadata": {"name": "daily", "namespace": NS, "generation": 2, "resourceVersion": "912877"},
            "spec": {"schedule": "0 2 * * *", "paused": paused, "useOwnerReferencesInBackup": False,
                     "template": {"includedNamespaces": ["*"], "storageLocation": "default", "ttl": "720h0m0s"}},
            "status": {"phase": "Enabled", "lastBackup": ts(last_backup_ago)}}


class Velero:
    """What the emulated API serves in the velero namespace; tests change it, the server answers from it."""

    def __init__(self, httpserver):
        self.backups = daily_history()
        self.location = storage_location()
        self.schedule = schedule()
        self.requests: list[str] = []
        self._server = httpserver
        for path, answer in (
                (f"{BASE}/backups", lambda: {"apiVersion": "velero.io/v1", "kind": "BackupList",
                                             "metadata": {"resourceVersion": "913300"}, "items": self.backups}),
                (f"{BASE}/backupstoragelocations/default", lambda: self.location),
                (f"{BASE}/schedules/daily", lambda: self.schedule)):
            httpserver.expect_request(path, method="GET").respond_with_handler(self._json(answer))

    def _json(self, answer):
        def handler(request):
            self.requests.append(f"{request.method} {request.full_path.rstrip('?')}")
            body = answer()
            if body is None:
                return Response(json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404}), status=404,
                                content_type="application/json")
            return Response(json.dumps(copy.deepcopy(body)), content_type="application/json")

        return handler

    def kubeconfig(self, directory) -> str:
        return write_kubeconfig(directory, self._server.url_for("").rstrip("/"))


@pytest.fixture
def velero(httpserver):
    return Velero(httpserver)


def velero_environment(kubeconfig: str, rpo: str = "24h", **settings) -> dict:
    section = {"namespace": NS, "schedule": "daily", "storage_location": "default", "timeout_s": 2, **settings}
    return {"tier": "staging",
            "kubernetes": {"prod": {"kubeconfig": kubeconfig, "namespace": "shop", "request_timeout_s": 2}},
            "backups": {"cluster": {"of": "kubernetes.prod", "format": "velero", "rpo": rpo, "rto": "4h",
                                    "velero": section}}}


@pytest.fixture
def run_velero(velero, tmp_path, write_env, run_checks):
    def run(*args, kubeconfig: str | None = None, **settings):
        environment = velero_environment(kubeconfig or velero.kubeconfig(tmp_path), **settings)
        return run_checks(write_env(environment), "-k", "velero", *args)

    return run


def message(run, check: str) -> str:
    return run.record(check, "cluster")["message"]


def test_healthy_velero_passes_every_check_with_read_only_requests(velero, run_velero):
    run = run_velero()
    assert run.ret == 0, run.output
    assert {check: run.record(check, "cluster")["outcome"] for check in CHECKS} == dict.fromkeys(CHECKS, "passed")
    latest = velero.backups[-1]["metadata"]["name"]
    phase = run.record("test_velero_latest_backup_completed", "cluster")["measurements"]
    assert phase[0] == {"measure": "backups_found", "value": 3}
    assert phase[-1] == {"measure": "backup_phase", "value": "Completed", "op": "==", "limit": "Completed",
                         "verdict": "ok"}
    assert {"measure": "backup_id", "value": latest} in phase
    age = run.record("test_velero_latest_completed_backup_within_rpo", "cluster")["measurements"]
    assert age[-1]["measure"] == "age_h" and 2.0 <= age[-1]["value"] <= 2.1
    counts = [run.record(f"test_velero_latest_backup_{c}_within_limit", "cluster")["measurements"][-1]
              for c in ("errors", "warnings")]
    assert [(m["measure"], m["value"], m["limit"]) for m in counts] == [("errors", 0, 0), ("warnings", 0, 0)]
    location = run.record("test_velero_storage_location_available", "cluster")["measurements"]
    assert location[-1]["measure"] == "validation_age_min" and location[-1]["value"] <= 1.5
    assert all(r.startswith("GET ") for r in velero.requests)
    assert f"GET {BASE}/backups?labelSelector=velero.io/schedule-name%3Ddaily" in velero.requests
    assert {f"GET {BASE}/backupstoragelocations/default", f"GET {BASE}/schedules/daily"} <= set(velero.requests)


def test_backup_still_running_is_reported_and_the_latest_finished_one_judged(velero, run_velero):
    running = backup(timedelta(minutes=3), phase="InProgress")
    velero.backups.append(running)
    run = run_velero("-k", "latest_backup_completed")
    assert run.ret == 0, run.output
    measurements = run.record("test_velero_latest_backup_completed", "cluster")["measurements"]
    assert {"measure": "in_flight", "value": [running["metadata"]["name"]]} in measurements
    assert {"measure": "backup_id", "value": velero.backups[-2]["metadata"]["name"]} in measurements


def test_partially_failed_latest_backup_fails_phase_and_errors_and_ages_the_recovery_point(velero, run_velero):
    velero.backups = daily_history(timedelta(hours=2, minutes=9) + timedelta(days=1) - timedelta(seconds=60))[1:]
    velero.backups.append(backup(timedelta(hours=2, minutes=9), phase="PartiallyFailed", errors=2, warnings=1))
    run = run_velero()
    assert run.ret == 1
    assert message(run, "test_velero_latest_backup_completed") == (
        "backup_phase ('PartiallyFailed') == 'Completed' on backups.cluster")
    assert message(run, "test_velero_latest_backup_errors_within_limit") == "errors (2) <= 0 on backups.cluster"
    assert message(run, "test_velero_latest_backup_warnings_within_limit") == "warnings (1) <= 0 on backups.cluster"
    assert message(run, "test_velero_latest_completed_backup_within_rpo") == "age_h (26.0) <= 24 on backups.cluster"


def test_failed_latest_backup_fails_with_its_reason_recorded(velero, run_velero):
    reason = 'get a backup with status "InProgress" during the server starting, mark it as "Failed"'
    velero.backups.append(backup(timedelta(minutes=30), phase="Failed", failureReason=reason))
    run = run_velero("-k", "latest_backup_completed")
    record = run.record("test_velero_latest_backup_completed", "cluster")
    assert record["message"] == "backup_phase ('Failed') == 'Completed' on backups.cluster"
    assert {"measure": "failureReason", "value": reason} in record["measurements"]


def test_failed_validation_backup_is_judged_by_its_creation_time(velero, run_velero):
    """FailedValidation backups never start: no startTimestamp, only metadata.creationTimestamp."""
    invalid = backup(timedelta(minutes=5), phase="FailedValidation", validationErrors=[
        "an existing backup storage location wasn't specified at backup creation time and the default 'default' "
        "wasn't found. Please address this issue (see `velero backup-location -h` for options) and create a new "
        "backup. Error: BackupStorageLocation.velero.io \"default\" not found"])
    del invalid["status"]["startTimestamp"], invalid["status"]["progress"]
    velero.backups.insert(0, invalid)  # the list order is the API's, not the time order
    run = run_velero("-k", "latest_backup_completed")
    record = run.record("test_velero_latest_backup_completed", "cluster")
    assert record["message"] == "backup_phase ('FailedValidation') == 'Completed' on backups.cluster"
    assert record["measurements"][-2]["measure"] == "validationErrors"


def test_completed_backup_with_warnings_above_the_limit_fails_only_the_warnings_check(velero, run_velero):
    velero.backups[-1]["status"]["warnings"] = 3
    run = run_velero("-k", "within_limit or completed")
    assert message(run, "test_velero_latest_backup_warnings_within_limit") == "warnings (3) <= 0 on backups.cluster"
    assert run.record("test_velero_latest_backup_completed", "cluster")["outcome"] == "passed"
    assert run.record("test_velero_latest_backup_errors_within_limit", "cluster")["outcome"] == "passed"
    assert run_velero("-k", "warnings", warnings=3).ret == 0


def test_errors_limit_accepts_partially_failed_up_to_the_count(velero, run_velero):
    velero.backups.append(backup(timedelta(minutes=40), phase="PartiallyFailed", errors=2))
    run = run_velero("-k", "errors_within_limit or latest_backup_completed", errors=1)
    assert run.record("test_velero_latest_backup_completed", "cluster")["outcome"] == "passed"
    assert message(run, "test_velero_latest_backup_errors_within_limit") == "errors (2) <= 1 on backups.cluster"
    assert run_velero("-k", "errors_within_limit or latest_backup_completed", errors=2).ret == 0


def test_backups_completed_30_hours_ago_are_past_a_24h_rpo(velero, run_velero):
    stale = timedelta(hours=30, minutes=9) - timedelta(seconds=60)
    velero.backups = daily_history(stale)
    velero.schedule = schedule(last_backup_ago=stale)
    run = run_velero()
    assert run.ret == 1
    assert message(run, "test_velero_latest_completed_backup_within_rpo") == "age_h (30.0) <= 24 on backups.cluster"
    assert message(run, "test_velero_schedule_enabled_and_recent") == (
        "last_backup_age_h (30.1) <= 24 on backups.cluster")
    assert run.record("test_velero_latest_backup_completed", "cluster")["outcome"] == "passed"


def test_no_backups_at_all_fails_existence_and_rpo(velero, run_velero):
    velero.backups = []
    run = run_velero()
    assert run.ret == 1
    for check in ("test_velero_latest_backup_completed", "test_velero_latest_backup_errors_within_limit",
                  "test_velero_latest_backup_warnings_within_limit"):
        assert message(run, check) == "latest_backup ('none') != 'none' on backups.cluster", check
    assert message(run, "test_velero_latest_completed_backup_within_rpo") == (
        "latest_completed_backup ('none') != 'none' on backups.cluster")


def test_expired_backup_still_listed_fails(velero, run_velero):
    velero.backups[-1]["status"]["expiration"] = ts(timedelta(hours=5))
    run = run_velero("-k", "not_expired")
    assert message(run, "test_velero_latest_completed_backup_not_expired") == (
        "expires_in_h (-5.0) > 0 on backups.cluster")


def test_unavailable_storage_location_fails_with_velero_message_recorded(velero, run_velero):
    problem = ('BackupStorageLocation "default" is unavailable: rpc error: code = Unknown desc = NoSuchBucket: '
               'The specified bucket does not exist')
    velero.location = storage_location(phase="Unavailable", message=problem)
    run = run_velero("-k", "storage_location")
    record = run.record("test_velero_storage_location_available", "cluster")
    assert record["message"] == "location_phase ('Unavailable') == 'Available' on backups.cluster"
    assert {"measure": "location_message", "value": problem} in record["measurements"]


def test_storage_location_validated_3h_ago_is_stale(velero, run_velero):
    velero.location = storage_location(validated_ago=timedelta(hours=3))
    run = run_velero("-k", "storage_location", location_validation_max_age="2h")
    assert message(run, "test_velero_storage_location_available") == (
        "validation_age_h (3.0) <= 2 on backups.cluster")


def test_missing_storage_location_and_schedule_fail_and_unset_ones_skip(velero, run_velero):
    velero.location, velero.schedule = None, None
    run = run_velero("-k", "storage_location or schedule")
    assert message(run, "test_velero_storage_location_available") == (
        "storage_location ('none') != 'none' on backups.cluster")
    assert message(run, "test_velero_schedule_enabled_and_recent") == "schedule ('none') != 'none' on backups.cluster"
    run = run_velero("-k", "storage_location or schedule or latest_backup_completed", storage_location=None,
                     schedule=None)
    assert run.ret == 0, run.output
    assert message(run, "test_velero_storage_location_available") == "backups.cluster sets no velero.storage_location"
    assert message(run, "test_velero_schedule_enabled_and_recent") == "backups.cluster sets no velero.schedule"
    assert f"GET {BASE}/backups" in velero.requests  # without a schedule every Backup in the namespace counts


def test_paused_schedule_fails(velero, run_velero):
    velero.schedule = schedule(paused=True)
    run = run_velero("-k", "schedule")
    assert message(run, "test_velero_schedule_enabled_and_recent") == "paused (true) == false on backups.cluster"


def test_stopped_api_server_errors_once_and_skips_the_rest(tmp_path, run_velero, refused_port):
    started = time.monotonic()
    run = run_velero(kubeconfig=write_kubeconfig(tmp_path, f"http://127.0.0.1:{refused_port}"))
    records = [run.record(check, "cluster") for check in CHECKS]
    assert run.ret == 1
    assert records[0]["outcome"] == "error"
    assert records[0]["message"] == (
        f"could not measure on backups.cluster: list_namespaced_custom_object(velero.io, v1, {NS}, backups): "
        "NewConnectionError: Failed to establish a new connection: [Errno 111] Connection refused")
    assert {r["outcome"] for r in records[1:]} == {"skipped"}
    assert "Traceback" not in run.output
    assert time.monotonic() - started < 2 + 3


def test_silent_api_server_costs_its_timeout_once(tmp_path, run_velero, silent_port):
    started = time.monotonic()
    run = run_velero(kubeconfig=write_kubeconfig(tmp_path, f"http://127.0.0.1:{silent_port}"), timeout_s=1)
    records = [run.record(check, "cluster") for check in CHECKS]
    assert records[0]["message"] == (
        f"could not measure on backups.cluster: list_namespaced_custom_object(velero.io, v1, {NS}, backups): "
        "no answer within 1 s")
    assert {r["outcome"] for r in records[1:]} == {"skipped"}
    assert time.monotonic() - started < 1 + 3


# --- the environment model -----------------------------------------------------------------------
MODEL = """\
name: staging
tier: staging
kubernetes:
  prod: {kubeconfig: /etc/kube/config}
postgres:
  main: {dsn: "postgresql://bot@db:5432/app"}
backups:
"""


def load(tmp_path, backups: str):
    path = tmp_path / "staging.yaml"
    path.write_text(MODEL + backups)
    return load_environment(path, {}).environment


def test_a_velero_set_loads_with_its_defaults(tmp_path):
    loaded = load(tmp_path, "  cluster: {of: kubernetes.prod, format: velero, rpo: 24h, rto: 4h, velero: {}}\n")
    settings = loaded.backups["cluster"].velero
    assert (settings.namespace, settings.schedule, settings.storage_location, settings.warnings, settings.errors,
            settings.location_validation_max_age, settings.timeout_s) == ("velero", None, None, 0, 0, 3600, None)
    tuned = load(tmp_path, "  cluster: {of: kubernetes.prod, format: velero, rpo: 24h, rto: 4h, velero: "
                           "{schedule: daily, location_validation_max_age: 30m, warnings: 5}}\n")
    assert tuned.backups["cluster"].velero.location_validation_max_age == 1800


@pytest.mark.parametrize("spec, key_path, problem", [
    ("{of: kubernetes.prod, format: velero, rpo: 24h, rto: 1h}", "backups.db",
     "format velero needs a velero: {namespace: ..., schedule: ...} section"),
    ("{of: kubernetes.prod, format: velero, location: /b/*, rpo: 24h, rto: 1h, velero: {}}", "backups.db",
     "format velero reads Backup objects from the cluster's API: remove location"),
    ("{of: kubernetes.prod, format: velero, rpo: 24h, rto: 1h, velero: {}, restore_into: "
     "{dsn: 'postgresql://x@h/d', scratch: true}}", "backups.db",
     "restore_into: the restore drill restores logical dumps, pgbackrest and pg_basebackup, not velero"),
    ("{of: kubernetes.other, format: velero, rpo: 24h, rto: 1h, velero: {}}", "backups.db.of",
     "kubernetes.other is not a target in this environment"),
    ("{of: postgres.main, format: velero, rpo: 24h, rto: 1h, velero: {}}", "backups.db",
     "format velero backs up kubernetes targets, not postgres.main"),
    ("{of: kubernetes.prod, format: pg_custom, location: /b/*.dump, rpo: 24h, rto: 1h}", "backups.db",
     "format pg_custom backs up postgres targets, not kubernetes.prod"),
    ("{of: kubernetes.prod, format: velero, rpo: 24h, rto: 1h, velero: {errors: -1}}", "backups.db.velero.errors",
     "Input should be greater than or equal to 0"),
    ("{of: kubernetes.prod, format: velero, rpo: 24h, rto: 1h, velero: {location_validation_max_age: soon}}",
     "backups.db.velero.location_validation_max_age", "'soon' is not a duration like 24h, 30m, 1h30m or 7d"),
])
def test_wrong_velero_sets_are_rejected_with_the_key_path(tmp_path, spec, key_path, problem):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, f"  db: {spec}\n")
    assert (error.value.key_path, error.value.problem) == (key_path, problem)


def test_validate_exits_4_with_one_line_for_a_velero_set_without_its_section(tmp_path, capsys):
    path = tmp_path / "staging.yaml"
    path.write_text(MODEL + "  cluster: {of: kubernetes.prod, format: velero, rpo: 24h, rto: 4h}\n")
    assert main(["validate", str(path)]) == 4
    err = capsys.readouterr().err.strip()
    assert err == (f"opsproof: {path}: backups.cluster: format velero needs a velero: "
                   "{namespace: ..., schedule: ...} section")


def test_rbac_grants_the_velero_reads_the_probe_makes_and_nothing_more(velero, run_velero):
    import yaml

    from conftest import ROOT

    documents = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    role = next(d for d in documents if d["kind"] == "Role" and d["metadata"]["namespace"] == NS)
    binding = next(d for d in documents if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == NS)
    account = next(d for d in documents if d["kind"] == "ServiceAccount")
    assert role["rules"] == [{"apiGroups": ["velero.io"], "resources": ["backups", "schedules",
                                                                        "backupstoragelocations"],
                              "verbs": ["get", "list"]}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
    assert run_velero().ret == 0
    read = {request.split("?")[0].split("/")[6] for request in velero.requests}
    assert read <= set(role["rules"][0]["resources"]) and all(r.startswith("GET ") for r in velero.requests)
