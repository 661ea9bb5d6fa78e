"""deploy/: the alert rules pass promtool, the units systemd-analyze, the CI files their schemas, the
Kubernetes manifests the official client's models; and the three schedules run the same commands everywhere."""

from __future__ import annotations

import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient

from conftest import ROOT
from opsproof.publish.metrics import run_registry

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("opsproof-*.*"))
INSTALLED_AT = "/opt/opsproof/.venv/bin/opsproof"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: it comes with Debian's prometheus package (scripts/system-packages.txt)"
    return subprocess.run([binary, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)


def test_alert_rules_pass_promtool_check_and_their_tests():
    checked = promtool("check", "rules", "opsproof-rules.yml")
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "opsproof-rules.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "opsproof-rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts >= {"OpsproofNightlyDidNotRun", "OpsproofGateFailing", "OpsproofNoRestoreDrill", "OpsproofRtoMissed"}
    cases = [case for test in yaml.safe_load((DEPLOY / "prometheus" / "opsproof-rules.test.yml").read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts


def test_rules_use_only_metrics_opsproof_writes():
    now = datetime.now(timezone.utc)
    written = {family.name for family in run_registry(
        {"environment": {"name": "e"}, "suite": "s", "exit_code": 0, "checks": []}, now, now).collect()}
    used = set(re.findall(r"\bopsproof_[a-z_]+", (DEPLOY / "prometheus" / "opsproof-rules.yml").read_text()))
    assert used and used <= written, used - written


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """As installed in this clone: verify checks that ExecStart's program exists and is executable."""
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, str(Path(sys.executable).parent /
                                                                                       "opsproof")))
    result = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.iterdir()))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    assert {u.name for u in UNITS} == {f"opsproof-{s}.{t}" for s in ("nightly", "restore-drill", "dr-drill")
                                       for t in ("service", "timer")}


def _unit_commands() -> dict[str, list[str]]:
    commands = {}
    for unit in (DEPLOY / "systemd").glob("*.service"):
        line, = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
        commands[unit.stem.removeprefix("opsproof-")] = shlex.split(line.removeprefix("ExecStart="))[1:]
    return commands


def _cron_commands() -> dict[str, list[str]]:
    commands = {}
    for line in (DEPLOY / "cron" / "opsproof").read_text().splitlines():
        if "opsproof run" in line and not line.startswith("#"):
            fields = shlex.split(line.split(".venv/bin/opsproof", 1)[1].split(">>")[0])
            name = re.search(r"OPSPROOF_OPERATOR=cron:opsproof-([a-z-]+)", line).group(1)
            commands[name] = fields
    return commands


def test_cron_and_systemd_run_the_same_three_commands():
    assert _cron_commands() == _unit_commands()
    assert set(_unit_commands()) == {"nightly", "restore-drill", "dr-drill"}


def test_every_scheduled_dr_drill_confirms_its_scenario():
    """A dr run that confirms no scenario refuses every one (test_dr_drill): such a schedule fails every quarter."""
    cronjob_args = [d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
                    for d in _manifests() if d["kind"] == "CronJob"]
    schedules = [*_unit_commands().values(), *_cron_commands().values(), *cronjob_args]
    drills = [args for args in schedules if args[args.index("--suite") + 1] == "dr"]
    assert len(drills) == 3
    for args in drills:
        assert "--allow-destructive" in args and args[args.index("--confirm-drill") + 1] == "database-failover"


def _manifests() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "opsproof.yaml").read_text()) if d]


def _model(document: dict):
    """The document as the official client's model (as if the API server had answered it)."""
    klass = f"{document['apiVersion'].split('/')[-1].capitalize()}{document['kind']}"
    client = ApiClient()
    if "response_text" in inspect.signature(client.deserialize).parameters:  # kubernetes >= 35
        return client.deserialize(json.dumps(document), klass, "application/json")
    return client.deserialize(type("Response", (), {"data": json.dumps(document)})(), klass)


def _pruned(value):
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def test_kubernetes_manifests_load_into_the_client_models_unchanged():
    """A key the model does not know would be dropped on the way in: the round trip shows it."""
    kinds = []
    for document in _manifests():
        model = _model(document)
        assert type(model).__name__ == f"V1{document['kind']}"
        assert _pruned(ApiClient().sanitize_for_serialization(model)) == document
        kinds.append(document["kind"])
    assert kinds == ["PersistentVolumeClaim", "CronJob", "CronJob", "CronJob"]


def test_cronjobs_run_alone_as_the_rbac_service_account_with_config_and_secrets():
    account, = [d for d in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()) if d["kind"] == "ServiceAccount"]
    cronjobs = [_model(d) for d in _manifests() if d["kind"] == "CronJob"]
    for cronjob in cronjobs:
        pod = cronjob.spec.job_template.spec.template.spec
        container, = pod.containers
        volumes = {v.name: v for v in pod.volumes}
        mounts = {m.mount_path: m for m in container.volume_mounts}
        assert cronjob.spec.concurrency_policy == "Forbid"
        assert (pod.service_account_name, cronjob.metadata.namespace) == (account["metadata"]["name"],
                                                                          account["metadata"]["namespace"])
        assert volumes[mounts["/etc/opsproof"].name].config_map.name == "opsproof-environments"
        assert [e.secret_ref.name for e in container.env_from] == ["opsproof-secrets"]
        env_file = container.args[container.args.index("--env") + 1]
        assert env_file.startswith("/etc/opsproof/") and mounts["/etc/opsproof"].read_only
        reports = container.args[container.args.index("--reports-dir") + 1]
        assert volumes[mounts[reports].name].persistent_volume_claim.claim_name == "opsproof-reports"
    suites = {c.metadata.name.removeprefix("opsproof-"): c.spec.job_template.spec.template.spec.containers[0].args
              for c in cronjobs}
    for name, args in _unit_commands().items():  # the same suite, flags and environment as the systemd unit
        env = args[args.index("--env") + 1]
        assert suites[name][:suites[name].index("--reports-dir")] == [
            a if a != env else f"/etc/opsproof/{env}.yaml" for a in args[:args.index("--metrics-textfile")]]


@pytest.mark.parametrize(("schema", "path"), [("vendor.github-workflows", "github-actions.yml"),
                                              ("vendor.gitlab-ci", "gitlab-ci.yml")])
def test_ci_files_pass_their_builtin_schemas(schema, path):
    result = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", schema,
                             str(DEPLOY / "ci" / path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_gates_publish_junit_and_html_reports():
    gitlab = yaml.safe_load((DEPLOY / "ci" / "gitlab-ci.yml").read_text())["post-deploy-gate"]
    assert gitlab["artifacts"]["reports"]["junit"] == "gate-report/junit.xml"
    assert gitlab["artifacts"]["paths"] == ["gate-report/"] and gitlab["artifacts"]["when"] == "always"
    steps = yaml.safe_load((DEPLOY / "ci" / "github-actions.yml").read_text())["jobs"]["post-deploy-gate"]["steps"]
    uses = {s["uses"].split("@")[0]: s["with"] for s in steps if "uses" in s}
    assert uses["mikepenz/action-junit-report"]["report_paths"] == "opsproof/gate-report/junit.xml"
    assert uses["actions/upload-artifact"]["path"] == "opsproof/gate-report/"
    for command in (*gitlab["script"], *(s.get("run", "") for s in steps)):
        if "opsproof run" in command:
            assert "--suite smoke" in command
