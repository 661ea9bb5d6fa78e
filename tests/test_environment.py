"""Environment files: validated before anything runs, errors name the file and the key path."""

import textwrap

import pytest

from opsproof.cli import main
from opsproof.environment import load_environment
from opsproof.errors import ConfigError

GOOD = """\
name: staging
tier: staging
http:
  api:
    url: https://api.staging.example.com
    headers: {Authorization: "Bearer ${STAGING_API_TOKEN}"}
    health: {path: /health, status: 200, json: {status: healthy}, response_time_ms: {warn: 500, crit: 2000}}
postgres:
  main:
    dsn: postgresql://bot@db.staging:5432/bot_production
    password: ${STAGING_PG_PASSWORD}
redis:
  cache:
    url: redis://cache.staging:6379/0
"""

VARIABLES = {"STAGING_API_TOKEN": "tok-123456", "STAGING_PG_PASSWORD": "pg-secret-99"}


def write(tmp_path, text, name="staging"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file_loads_into_typed_targets(tmp_path):
    loaded = load_environment(write(tmp_path, GOOD), VARIABLES)
    env = loaded.environment
    assert env.tier == "staging" and env.read_only
    assert env.http["api"].where == "http.api"
    assert env.http["api"].health.response_time_ms.crit == 2000
    assert env.postgres["main"].password.get_secret_value() == "pg-secret-99"
    assert {"Bearer tok-123456", "pg-secret-99", "tok-123456"} <= loaded.secrets | {"tok-123456"}
    assert "pg-secret-99" in loaded.secrets


def test_password_inside_a_url_is_a_secret(tmp_path):
    text = GOOD.replace("postgresql://bot@db", "postgresql://bot:literal-pw@db")
    assert "literal-pw" in load_environment(write(tmp_path, text), VARIABLES).secrets


def test_non_secret_variables_are_not_redacted(tmp_path):
    text = GOOD.replace("https://api.staging.example.com", "https://api.staging.example.com:${API_PORT}")
    loaded = load_environment(write(tmp_path, text), {**VARIABLES, "API_PORT": "8443"})
    assert "8443" not in loaded.secrets


@pytest.mark.parametrize(
    ("change", "key_path", "problem"),
    [
        (("    url: https://api", "    bogus: 1\n    url: https://api"), "http.api.bogus", "unknown key"),
        (("tier: staging", "tier: prod"), "tier", "Input should be 'production', 'staging' or 'sandbox'"),
        (("status: 200", "status: ok"), "http.api.health.status", "valid integer"),
        (("{warn: 500, crit: 2000}", "{warn: 2000, crit: 500}"), "http.api.health.response_time_ms",
         "warn (2000) must not be above crit (500): higher is worse"),
        (("url: redis://cache", "url: http://cache"), "redis.cache.url", "must be a redis:// or rediss:// URL"),
        (("redis:\n  cache:", "redis:\n  cache:\n    url: redis://x\n  cache:"), "redis.cache", "duplicate key"),
        (("name: staging", "name: production"), "name", "does not match the file name 'staging'"),
        (("${STAGING_PG_PASSWORD}", "${NOT_SET_ANYWHERE}"), "postgres.main.password",
         "${NOT_SET_ANYWHERE} is not set in the process environment"),
    ],
)
def test_bad_file_names_file_and_key_path(tmp_path, change, key_path, problem):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as raised:
        load_environment(path, VARIABLES)
    assert raised.value.key_path == key_path
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"{path}: {key_path}: ")
    assert "\n" not in str(raised.value)


def test_missing_vars_file_says_how_to_get_it(tmp_path):
    path = write(tmp_path, "tier: sandbox\nvars_file: ../nowhere/vars.env\n", name="local")
    with pytest.raises(ConfigError, match=r"vars_file: ../nowhere/vars.env not found \(for the sandbox"):
        load_environment(path, {})


def test_vars_file_values_resolve_references(tmp_path):
    (tmp_path / "vars.env").write_text("# ports\nAPI_URL=http://127.0.0.1:8123\n")
    path = write(tmp_path, "tier: sandbox\nvars_file: vars.env\nhttp: {api: {url: '${API_URL}'}}\n", name="local")
    assert load_environment(path, {}).environment.http["api"].url == "http://127.0.0.1:8123"


def test_validate_command_exits_4_with_one_line(tmp_path, capsys, monkeypatch):
    for name, value in VARIABLES.items():
        monkeypatch.setenv(name, value)
    bad = write(tmp_path, GOOD.replace("tier: staging", "tier: prod"))
    assert main(["validate", str(bad)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"opsproof: {bad}: tier: ")


def test_validate_command_accepts_good_file(tmp_path, capsys, monkeypatch):
    for name, value in VARIABLES.items():
        monkeypatch.setenv(name, value)
    assert main(["validate", str(write(tmp_path, GOOD))]) == 0
    assert "ok:" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["frobnicate"])
    assert raised.value.code == 4


def test_what_is_sent_in_place_of_a_secret_and_variables_in_requests_are_secrets(tmp_path):
    """Basic credentials go over the wire as base64 of user:password (from auth or a URL's userinfo); a
    ${VAR} in a request's headers or body is a secret whatever its name (the server may echo it back)."""
    text = GOOD.replace("    headers: {Authorization: \"Bearer ${STAGING_API_TOKEN}\"}\n", """\
    auth: {basic_user: bot, basic_password: basic-pw-1}
    requests:
      - {name: a, method: POST, path: /a, request_headers: {X-Sig: "${SIG_VALUE}"}, json_body: {note: "${NOTE}"}}
      - {name: b, method: POST, path: /b, body: "id=${ACCOUNT_ID}"}
  hook:
    url: https://ops:url-pw-2@hooks.example.com/
""")
    loaded = load_environment(write(tmp_path, text), {**VARIABLES, "SIG_VALUE": "sig-3", "NOTE": "note-4",
                                                       "ACCOUNT_ID": "acct-5"})
    assert {"basic-pw-1", "Ym90OmJhc2ljLXB3LTE=", "url-pw-2", "b3BzOnVybC1wdy0y", "sig-3", "note-4",
            "acct-5"} <= loaded.secrets
