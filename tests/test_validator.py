"""The validator that helps (issue 18, items 11-14): what a run would refuse or misread is refused at load,
every problem at once with its line, durations everywhere, one invariant shape, ``validate --no-secrets``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsproof.environment import load_environment
from opsproof.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE = """\
tier: staging
postgres:
  main: {dsn: "postgres://bot@127.0.0.1:5432/app"}
"""


def write(tmp_path: Path, text: str, name: str = "staging") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problem_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_environment(write(tmp_path, text), {})
    return raised.value


def validate(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsproof.cli", "validate", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


# --- 11. rejected at load, never misread at run time --------------------------------------------------------

BACKUP = "backups:\n  db: {of: postgres.main, format: pg_custom, location: '/b/*.dump', rpo: 24h, rto: 1h%s}\n"
SCENARIO = """\
dr:
  failover:
    acts_on: [%s]
    steps: [{name: promote, type: promote, target: %s, timeout: 1m}]
    verify: {targets: [%s]}
    rto: 5m
"""


@pytest.mark.parametrize(("extra", "key_path", "problem"), [
    (BACKUP % "", "backups.db.location", "scheme ssh:// is not supported"),
    ("tier: production\n" + BACKUP % ", restore_into: {dsn: 'postgres://x@127.0.0.1/scratch', scratch: true}",
     "backups.db.restore_into", "environment staging is tier production, which is read-only"),
    (SCENARIO % ("postgres.replica", "postgres.replica", "postgres.main"), "dr.failover.acts_on.0",
     "postgres.replica is not a target in this environment"),
    (SCENARIO % ("postgres.main", "postgres.main", "http.api"), "dr.failover.verify.targets.0",
     "http.api is not a target in this environment"),
    ("http:\n  api: {url: 'http://a/', metrics: {error_ratio: {errors: 'errors_total{code=\"5\"', pct: {crit: 5}}}}\n",
     "http.api.metrics.error_ratio.errors", "is not a series selector"),
    ("http:\n  api: {url: 'http://a/', metrics: {error_ratio: {total: 'http requests', pct: {crit: 5}}}}\n",
     "http.api.metrics.error_ratio.total", "is not a series selector"),
    ("http:\n  api: {url: 'http://a/', metrics: {counters: {'errors_total{code=5}': {crit: 1}}}}\n",
     "http.api.metrics.counters", "cannot read the label matcher at 'code=5'"),
    ("http:\n  api: {url: 'http://a/', health: {response_time_ms: {crit: .nan}}}\n",
     "http.api.health.response_time_ms.crit", "finite number"),
    ("http:\n  api: {url: 'http://a/', health: {response_time_ms: {warn: .inf}}}\n",
     "http.api.health.response_time_ms.warn", "finite number"),
    ("custom:\n  mismatches: {crit: .nan}\n", "custom.mismatches.crit", "finite number"),
])
def test_what_the_run_would_refuse_or_misread_is_refused_at_load(tmp_path, extra, key_path, problem):
    text = BASE + extra
    if "location: '/b/*.dump', rpo" in extra and "restore_into" not in extra:
        text = text.replace("'/b/*.dump'", "'ssh://db1/b/*.dump'")
    if extra.startswith("tier: production"):
        text = text.replace("tier: staging\n", "")
    error = problem_of(tmp_path, text)
    assert (error.key_path, problem in error.problem) == (key_path, True), error.problem


def test_nan_limits_are_refused_in_every_invariant_shape(tmp_path):
    invariant = "postgres:\n  main: {dsn: 'postgres://b@h/app', invariants: {orphans: {sql: 'select 1', max: .nan}}}\n"
    error = problem_of(tmp_path, "tier: staging\n" + invariant)
    assert error.key_path == "postgres.main.invariants.orphans.max" and "finite number" in error.problem


# --- 12. all problems at once, with lines; one problem keeps its one line -------------------------------------

MANY = """\
tier: staging
postgress:
  main: {dsn: "postgres://bot@127.0.0.1/app"}
http:
  api:
    url: http://127.0.0.1:1/
    helth: {path: /health}
    timeout_s: 2h
kubernetes:
  cluster:
    namespace: Shop_Prod
"""


def test_every_problem_is_reported_at_once_with_file_line_and_key_path(tmp_path):
    path = write(tmp_path, MANY)
    result = validate(str(path))
    assert result.returncode == 4 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"opsproof: {path}: 4 problems"
    assert sorted(lines[1:]) == sorted([
        f"  {path}:2: postgress: unknown key; did you mean postgres?",
        f"  {path}:7: http.api.helth: unknown key; did you mean health?",
        f"  {path}:8: http.api.timeout_s: must be above 0s and at most 1h (got 2h)",
        f"  {path}:11: kubernetes.cluster.namespace: must be a Kubernetes name: lower case letters, digits, '-' "
        f"and '.', starting and ending with a letter or digit",
    ])
    assert "Traceback" not in result.stderr and "(and " not in result.stderr


def test_problems_across_sections_are_reported_together(tmp_path):
    into = ", restore_into: {dsn: 'postgres://x@h/scratch', scratch: true}"
    scenario = SCENARIO % ("postgres.replica", "postgres.replica", "postgres.main")
    text = BASE.replace("staging", "production") + BACKUP % into + scenario + \
        "    game_day: true\n    approver: ops lead\ncustom:\n  lag_s: {target: redis.gone, crit: 5m}\n"
    error = problem_of(tmp_path, text)
    assert [(p.key_path, p.line) for p in error.problems] == [
        ("dr.failover.acts_on.0", 8), ("backups.db.restore_into", 5), ("custom.lag_s.target", 15)]


def test_a_single_problem_keeps_its_one_line(tmp_path):
    path = write(tmp_path, BASE + "redis:\n  cache: {url: 'redis://h/0', ping_ms: {warn: 9, crit: 1}}\n")
    result = validate(str(path))
    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        f"opsproof: {path}: redis.cache.ping_ms: warn (9) must not be above crit (1): higher is worse"]


def test_unknown_keys_far_from_any_key_get_no_guess(tmp_path):
    error = problem_of(tmp_path, BASE + "redis:\n  cache: {url: 'redis://h/0', zzzz: 1}\n")
    assert (error.key_path, error.problem) == ("redis.cache.zzzz", "unknown key")


def test_a_percentage_written_as_a_fraction_is_a_warning_not_an_error(tmp_path):
    path = write(tmp_path, BASE + "redis:\n  cache:\n    url: redis://h/0\n    memory_pct: {warn: 0.8, crit: 95}\n"
                                  "custom:\n  error_rate_pct: {crit: 0.5}\n")
    loaded = load_environment(path, {})
    assert [(w.key_path, w.line) for w in loaded.warnings] == [("redis.cache.memory_pct.warn", 7),
                                                               ("custom.error_rate_pct.crit", 9)]
    result = validate(str(path))
    assert result.returncode == 0
    assert f"warning: {path}:7: redis.cache.memory_pct.warn: 0.8 is read as a percentage; if you meant 80 %, " \
           f"write 80" in result.stderr.splitlines()


# --- 13. durations everywhere, per-key limits, one invariant shape ----------------------------------------------

def test_durations_are_accepted_wherever_time_is_written(tmp_path):
    path = write(tmp_path, """\
        tier: staging
        postgres:
          main:
            dsn: postgres://bot@127.0.0.1/app
            connect_timeout: 5s
            statement_timeout_ms: 2s
            long_running_s: 7200
            replication_lag_s: {warn: 30s, crit: 5m}
            eventually: {within: 10m, every: 5s}
        redis:
          cache: {url: 'redis://h/0', max_since_save_s: 2d, timeout_s: 1.5, ping_ms: {crit: 250ms}}
        http:
          api: {url: 'http://a/', metrics: {error_ratio: {gap: 10s, pct: {crit: 5}}}}
    """)
    env = load_environment(path, {}).environment
    main, cache = env.postgres["main"], env.redis["cache"]
    assert (main.connect_timeout_s, main.statement_timeout_ms, main.long_running_s) == (5.0, 2000, 7200.0)
    assert (main.replication_lag_s.warn, main.replication_lag_s.crit) == (30.0, 300.0)
    assert (main.eventually.within_s, main.eventually.every_s) == (600.0, 5.0)
    assert (cache.max_since_save_s, cache.timeout_s, cache.ping_ms.crit) == (172800.0, 1.5, 250.0)
    assert env.http["api"].metrics.error_ratio.gap_s == 10.0


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("long_running_s", "60d", "must be above 0s and at most 30d (got 60d)"),
    ("connect_timeout_s", 7200, "must be above 0s and at most 1h (got 2h)"),
    ("connect_timeout_s", "soon", "'soon' is not a duration like 24h, 30m, 1h30m or 7d"),
    ("connect_timeout_s", 0, "must be above 0s and at most 1h (got 0s)"),
])
def test_each_time_key_has_its_documented_limit(tmp_path, key, value, problem):
    error = problem_of(tmp_path, f"tier: staging\npostgres:\n  main: {{dsn: 'postgres://b@h/app', {key}: {value}}}\n")
    assert (error.key_path, error.problem) == (f"postgres.main.{key}", problem)


@pytest.mark.parametrize("where", [
    "  other: {dsn: 'postgres://b@h/app', invariants: {x: {sql: 'select 1', %s}}}\n",
    "custom:\n  x: {%s}\n",
    BACKUP.replace("%s", ", invariants: {x: {sql: 'select 1', %s}}"),
])
@pytest.mark.parametrize(("limits", "problem"), [
    ("max: 1, warn: 2", "give either max/min or warn/crit, not both"),
    ("min: 5, max: 1", "min (5) is above max (1): no value could pass"),
])
def test_one_invariant_shape_says_the_same_everywhere(tmp_path, where, limits, problem):
    error = problem_of(tmp_path, BASE + where % limits)
    assert error.problem.endswith(problem), error


def test_backup_and_dr_invariants_take_bounds_in_the_shared_shape(tmp_path):
    path = write(tmp_path, BASE + BACKUP % ", invariants: {orphans: {sql: 'select 1'}, floor: {sql: 'select 2', "
                                           "min: 1}}")
    invariants = load_environment(path, {}).environment.backups["db"].invariants
    assert (invariants["orphans"].bounds, invariants["floor"].bounds) == ([("<=", 0)], [(">=", 1)])
    error = problem_of(tmp_path, BASE + BACKUP % ", invariants: {orphans: {sql: 'select 1', crit: 3}}")
    assert error.problem == "takes max and/or min (not warn/crit): recovery either holds it or not"


# --- 14. validate --no-secrets ---------------------------------------------------------------------------------

SECRET_FILE = """\
tier: production
vars_file: missing.env
postgres:
  main: {dsn: "${PROD_PG_DSN}", password: "${PROD_PG_PASSWORD}", connect_timeout_s: 3}
mysql:
  orders: {user: monitor, port: "${PROD_MYSQL_PORT}", password: "${PROD_MYSQL_PASSWORD}"}
http:
  api: {url: "https://api.example.com/", headers: {Authorization: "Bearer ${PROD_API_TOKEN}"}}
"""


def test_no_secrets_checks_structure_with_placeholders(tmp_path):
    path = write(tmp_path, SECRET_FILE, "prod")
    plain = {"PATH": "/usr/bin:/bin"}
    refused = validate(str(path), env=plain)
    assert refused.returncode == 4 and "vars_file: missing.env not found" in refused.stderr
    checked = validate("--no-secrets", str(path), env=plain)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines() == [
        f"ok: {path} (environment prod, tier production; 1 http, 1 postgres, 1 mysql)",
        "  placeholders for unset ${PROD_API_TOKEN}, ${PROD_MYSQL_PASSWORD}, ${PROD_MYSQL_PORT}, ${PROD_PG_DSN}, "
        "${PROD_PG_PASSWORD}: structure checked, not their values"]
    loaded = load_environment(path, {}, placeholders=True)
    assert loaded.environment.postgres["main"].dsn.startswith("postgres://")
    assert "opsproof-placeholder" not in loaded.secrets


def test_no_secrets_still_reports_structural_problems(tmp_path):
    path = write(tmp_path, SECRET_FILE.replace("connect_timeout_s: 3", "connect_timeout_s: 3h")
                 .replace("user: monitor", "user: monitor, bogus: 1"), "prod")
    result = validate("--no-secrets", str(path), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 4
    assert result.stderr.splitlines()[1:] == [
        f"  {path}:4: postgres.main.connect_timeout_s: must be above 0s and at most 1h (got 3h)",
        f"  {path}:6: mysql.orders.bogus: unknown key"]


def test_no_secrets_says_which_unset_value_no_placeholder_fits(tmp_path):
    path = write(tmp_path, BASE + "tcp:\n  gateway: {host: 127.0.0.1, port: '${GATEWAY_PORT}', connect_ms: {crit: "
                                  "'${GATEWAY_MS}'}}\n", "staging")
    loaded = load_environment(path, {}, placeholders=True)
    assert loaded.environment.tcp["gateway"].port == 1 and loaded.placeholders == ("GATEWAY_MS", "GATEWAY_PORT")


def test_no_secrets_validates_the_projects_own_files_without_their_vars():
    files = [str(p) for p in sorted((ROOT / "environments").rglob("*.yaml")) if ".waivers." not in p.name]
    result = validate("--no-secrets", *files, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    assert sum(line.startswith("ok: ") for line in result.stdout.splitlines()) == len(files) >= 2


def test_a_scratch_dsn_whose_port_is_not_a_number_names_its_key(tmp_path):
    error = problem_of(tmp_path, BASE + BACKUP % ", restore_into: {dsn: 'postgres://x@h:abc/scratch', scratch: true}")
    assert (error.key_path, error.problem) == ("backups.db.restore_into.dsn", "the port is not a number")


def test_a_scenario_whose_steps_are_not_a_list_is_a_problem_not_a_traceback(tmp_path):
    error = problem_of(tmp_path, BASE + "dr:\n  failover: {acts_on: [postgres.main], steps: 5, verify: {targets: "
                                        "[postgres.main]}, rto: 5m}\n")
    assert (error.key_path, error.problem) == ("dr.failover.steps", "Input should be a valid list")


def test_each_target_of_a_section_gets_its_own_problem(tmp_path):
    backups = "backups:\n" + "".join(
        f"  {name}: {{of: postgres.{source}, format: pg_custom, location: '/b/*.dump', rpo: 24h, rto: 1h}}\n"
        for name, source in (("nightly", "gone"), ("weekly", "main"), ("monthly", "lost")))
    error = problem_of(tmp_path, BASE + backups)
    assert [(p.key_path, p.problem, p.line) for p in error.problems] == [
        ("backups.nightly.of", "postgres.gone is not a target in this environment", 5),
        ("backups.monthly.of", "postgres.lost is not a target in this environment", 7)]
