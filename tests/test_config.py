"""Configuration tests: the committed example, the search order, every rejection."""

from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.config import Config, Target, load_config
from veerunbook.errors import ConfigError, UsageError

REPOSITORY = Path(__file__).parent.parent
EXAMPLE = REPOSITORY / "veerunbook.example.toml"
STAGING = '[targets.staging]\nbase_url = "http://127.0.0.1:8080"\n'


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in an empty folder with no configuration variable set."""
    monkeypatch.delenv("VEERUNBOOK_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rejection(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


# The committed example.


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.path == str(EXAMPLE)
    assert config.default_target == "staging"
    assert list(config.targets) == ["staging"]


def test_example_target() -> None:
    staging = load_config(EXAMPLE).targets["staging"]
    assert staging.base_url == "http://127.0.0.1:8080"
    assert staging.admin_token_env == "VEEFORE_ADMIN_TOKEN"
    assert staging.database_url_env == "DATABASE_URL"
    assert staging.app_repo == "/srv/veefore"
    assert staging.timeouts.connect_seconds == 2.0
    assert staging.timeouts.read_seconds == 5.0
    assert staging.timeouts.max_body_bytes == 2_000_000
    assert staging.commands["deploy_rollback"] == "npm run deploy:rollback -- {version}"
    assert staging.commands["db_restore"] == "npm run db:restore -- {backup}"
    assert len(staging.commands) == 6
    assert staging.allow_list == ("192.0.2.10", "198.51.100.0/28")


def test_example_endpoints_keep_defaults() -> None:
    endpoints = load_config(EXAMPLE).targets["staging"].endpoints
    assert endpoints["health"] == "/health"
    assert endpoints["deployments"] == "/api/deployments"
    assert len(endpoints) == 10


def test_example_user_flows() -> None:
    flows = load_config(EXAMPLE).targets["staging"].user_flows
    assert [flow.name for flow in flows] == ["login", "schedule post"]
    assert flows[0].method == "POST"
    assert flows[0].path == "/api/auth/login"
    assert flows[0].json == {"email": "synthetic-check@example.com"}
    assert flows[0].expect_status == 200
    assert flows[1].critical is True


def test_example_contacts_and_notify() -> None:
    config = load_config(EXAMPLE)
    assert set(config.contacts) == {
        "primary_oncall",
        "security",
        "infrastructure",
        "engineering_manager",
    }
    assert config.secret_env == ("INSTAGRAM_APP_SECRET",)
    assert config.notify_webhook_env == "VEERUNBOOK_WEBHOOK_URL"
    assert config.notify_channel == "#incidents"


# Where the file is looked up.


def test_search_defaults_without_file() -> None:
    config = load_config()
    assert config.path is None
    assert config.default_target == "demo"
    assert dict(config.targets) == {}


def test_search_finds_local_file(isolated: Path) -> None:
    write(isolated / "veerunbook.toml", STAGING)
    config = load_config()
    assert config.path == "veerunbook.toml"
    assert "staging" in config.targets


def test_search_env_beats_local(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "veerunbook.toml", STAGING)
    other = write(isolated / "other.toml", STAGING.replace("staging", "prod"))
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(other))
    config = load_config()
    assert config.path == str(other)
    assert list(config.targets) == ["prod"]


def test_search_explicit_beats_env(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(isolated / "env.toml", STAGING.replace("staging", "prod"))
    explicit = write(isolated / "explicit.toml", STAGING.replace("staging", "qa"))
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(from_env))
    config = load_config(explicit)
    assert config.path == str(explicit)
    assert list(config.targets) == ["qa"]


def test_search_empty_env_is_ignored(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated / "veerunbook.toml", STAGING)
    monkeypatch.setenv("VEERUNBOOK_CONFIG", "")
    assert load_config().path == "veerunbook.toml"


def test_search_env_file_missing(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = isolated / "missing.toml"
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(missing))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert caught.value.path == str(missing)
    assert caught.value.reason == "file not found"


def test_search_local_directory_is_not_a_file(isolated: Path) -> None:
    (isolated / "veerunbook.toml").mkdir()
    assert load_config().path is None


# Rejections: (file text, key named in the error, part of the reason).
BAD_FILES = [
    # wrong types
    ("default_target = 5\n", "default_target", "must be str, not int"),
    ("targets = 5\n", "targets", "must be a table"),
    ("[contacts]\nsecurity = 1\n", "contacts.security", "must be str, not int"),
    ('[secrets]\nenv = "TOKEN"\n', "secrets.env", "must be list, not str"),
    ("[notify]\nchannel = []\n", "notify.channel", "must be str, not list"),
    (
        STAGING + 'timeouts = "fast"\n',
        "targets.staging.timeouts",
        "must be a table, not str",
    ),
    (
        STAGING + '[targets.staging.timeouts]\nread_seconds = "5"\n',
        "targets.staging.timeouts.read_seconds",
        "must be int or float, not str",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nconnect_seconds = true\n",
        "targets.staging.timeouts.connect_seconds",
        "must be int or float, not bool",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nmax_body_bytes = 4096.0\n",
        "targets.staging.timeouts.max_body_bytes",
        "must be int, not float",
    ),
    (STAGING + "app_repo = 1\n", "targets.staging.app_repo", "must be str, not int"),
    (
        STAGING + 'user_flows = "login"\n',
        "targets.staging.user_flows",
        "must be an array of tables",
    ),
    (
        STAGING + '[[targets.staging.commands]]\ndb_status = "x"\n',
        "targets.staging.commands",
        "must be a table, not list",
    ),
    (
        STAGING + '[targets.staging.commands]\ndb_status = "  "\n',
        "targets.staging.commands.db_status",
        "is empty",
    ),
    # unknown keys, with the close match
    (
        'default_targte = "demo"\n',
        "default_targte",
        "did you mean 'default_target'?",
    ),
    (
        '[contacts]\nprimary_on_call = "pager"\n',
        "contacts.primary_on_call",
        "did you mean 'primary_oncall'?",
    ),
    (
        STAGING.replace("base_url", "base_ur"),
        "targets.staging.base_ur",
        "did you mean 'base_url'?",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nconect_seconds = 1\n",
        "targets.staging.timeouts.conect_seconds",
        "did you mean 'connect_seconds'?",
    ),
    (
        STAGING + '[targets.staging.endpoints]\nhelth = "/health"\n',
        "targets.staging.endpoints.helth",
        "did you mean 'health'?",
    ),
    (
        STAGING + '[[targets.staging.user_flows]]\nname = "a"\npth = "/"\n',
        "targets.staging.user_flows[0].pth",
        "did you mean 'path'?",
    ),
    # base URL
    ("[targets.staging]\n", "targets.staging.base_url", "missing"),
    (
        STAGING.replace("http://", "ftp://"),
        "targets.staging.base_url",
        "is not an http(s) URL",
    ),
    (
        '[targets.staging]\nbase_url = "http://"\n',
        "targets.staging.base_url",
        "is not an http(s) URL",
    ),
    (
        '[targets.staging]\nbase_url = "http://[::1:8080"\n',
        "targets.staging.base_url",
        "is not an http(s) URL",
    ),
    (
        '[targets.staging]\nbase_url = "http://127.0.0.1:99999"\n',
        "targets.staging.base_url",
        "is not an http(s) URL",
    ),
    (
        '[targets.staging]\nbase_url = "http://ops:hunter22@127.0.0.1:8080"\n',
        "targets.staging.base_url",
        "carries credentials",
    ),
    (
        '[targets.staging]\nbase_url = "https://ops@127.0.0.1"\n',
        "targets.staging.base_url",
        "carries credentials",
    ),
    # environment variable names
    (
        STAGING + 'admin_token_env = "SECRET"\ndatabase_url_env = "SECRET"\n',
        "targets.staging.database_url_env",
        "names the same variable as admin_token_env",
    ),
    (
        STAGING + 'database_url_env = "VEEFORE_ADMIN_TOKEN"\n',
        "targets.staging.database_url_env",
        "names the same variable as admin_token_env",
    ),
    (
        STAGING + 'admin_token_env = "ADMIN-TOKEN"\n',
        "targets.staging.admin_token_env",
        "'ADMIN-TOKEN' is not an environment variable name",
    ),
    (
        STAGING + 'database_url_env = "1DATABASE"\n',
        "targets.staging.database_url_env",
        "is not an environment variable name",
    ),
    (
        STAGING + 'admin_token_env = "TOKEN\\n"\n',
        "targets.staging.admin_token_env",
        "is not an environment variable name",
    ),
    (
        '[secrets]\nenv = ["GOOD", "bad name"]\n',
        "secrets.env[1]",
        "'bad name' is not an environment variable name",
    ),
    ("[secrets]\nenv = [7]\n", "secrets.env[0]", "is not an environment variable"),
    (
        '[notify]\nwebhook_url_env = "$HOOK"\n',
        "notify.webhook_url_env",
        "is not an environment variable name",
    ),
    # timeouts and limits
    (
        STAGING + "[targets.staging.timeouts]\nconnect_seconds = 0\n",
        "targets.staging.timeouts.connect_seconds",
        "must be a positive number, not 0",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nread_seconds = -1.5\n",
        "targets.staging.timeouts.read_seconds",
        "must be a positive number, not -1.5",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nread_seconds = nan\n",
        "targets.staging.timeouts.read_seconds",
        "must be a positive number, not nan",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nconnect_seconds = inf\n",
        "targets.staging.timeouts.connect_seconds",
        "must be a positive number, not inf",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nconnect_seconds = 61\n",
        "targets.staging.timeouts.connect_seconds",
        "must be at most 60, not 61",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nread_seconds = 300.5\n",
        "targets.staging.timeouts.read_seconds",
        "must be at most 300, not 300.5",
    ),
    (
        STAGING + "[targets.staging.timeouts]\nmax_body_bytes = 1023\n",
        "targets.staging.timeouts.max_body_bytes",
        "must be at least 1024, not 1023",
    ),
    # endpoints and user flows
    (
        STAGING + '[targets.staging.endpoints]\nhealth = "health"\n',
        "targets.staging.endpoints.health",
        "'health' must be a path starting with '/'",
    ),
    (
        STAGING + '[[targets.staging.user_flows]]\nname = "login"\n',
        "targets.staging.user_flows[0].path",
        "missing",
    ),
    (
        STAGING + '[[targets.staging.user_flows]]\nname = "a"\npath = "api"\n',
        "targets.staging.user_flows[0].path",
        "'api' must be a path starting with '/'",
    ),
    (
        STAGING + '[[targets.staging.user_flows]]\npath = "/api"\n',
        "targets.staging.user_flows[0].name",
        "missing",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + '[[targets.staging.user_flows]]\nname = "b"\npath = "/"\n'
        + 'method = "FETCH"\n',
        "targets.staging.user_flows[1].method",
        "'FETCH' is not an HTTP method",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + "expect_status = 99\n",
        "targets.staging.user_flows[0].expect_status",
        "99 is not an HTTP status code",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + "expect_status = 600\n",
        "targets.staging.user_flows[0].expect_status",
        "600 is not an HTTP status code",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + 'expect_status = "200"\n',
        "targets.staging.user_flows[0].expect_status",
        "must be int, not str",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + "expect_status = true\n",
        "targets.staging.user_flows[0].expect_status",
        "must be int, not bool",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + "json = { at = 2026-12-04T15:00:00Z }\n",
        "targets.staging.user_flows[0].json",
        "must be JSON data",
    ),
    (
        STAGING
        + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
        + 'critical = "yes"\n',
        "targets.staging.user_flows[0].critical",
        "must be bool, not str",
    ),
    # target names
    (
        '[targets.demo]\nbase_url = "http://127.0.0.1:8080"\n',
        "targets.demo",
        "not 'demo'",
    ),
    (
        '[targets."my target"]\nbase_url = "http://127.0.0.1:8080"\n',
        "targets.my target",
        "target names are letters, digits",
    ),
    (
        '[targets."staging\\n"]\nbase_url = "http://127.0.0.1:8080"\n',
        "targets.staging\n",
        "target names are letters, digits",
    ),
    (
        'default_target = "prod"\n' + STAGING,
        "default_target",
        "names 'prod', which is not a defined target",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "reason"), BAD_FILES, ids=[case[1] for case in BAD_FILES]
)
def test_rejection_names_file_key_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    error = rejection(tmp_path, text)
    assert error.path == str(tmp_path / "bad.toml")
    assert error.key == key
    assert reason in error.reason
    assert str(error) == f"invalid configuration in {error.path}: {key}: {error.reason}"


def test_rejection_hides_url_credentials(tmp_path: Path) -> None:
    text = '[targets.staging]\nbase_url = "http://ops:hunter22@127.0.0.1:8080"\n'
    assert "hunter22" not in str(rejection(tmp_path, text))


def test_rejection_lists_known_keys(tmp_path: Path) -> None:
    error = rejection(tmp_path, '[notify]\nchanel = "#ops"\n')
    assert "known keys: channel, webhook_url_env" in error.reason


def test_rejection_invalid_toml(tmp_path: Path) -> None:
    error = rejection(tmp_path, "default_target = \n")
    assert error.key == ""
    assert error.reason.startswith("not valid TOML")
    assert "line 1" in error.reason
    assert str(error).startswith(f"invalid configuration in {tmp_path / 'bad.toml'}:")


def test_rejection_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('default_target = "d\xe9mo"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == str(path)
    assert caught.value.key == ""
    assert "not UTF-8 text (invalid byte at offset 19)" in caught.value.reason


def test_rejection_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == f"invalid configuration in {missing}: file not found"


def test_rejection_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.reason == "cannot be read (IsADirectoryError)"


# Accepted forms.


def test_accepts_minimal_target(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "ok.toml", STAGING))
    staging = config.targets["staging"]
    assert staging.timeouts.read_seconds == 5.0
    assert staging.user_flows == ()
    assert config.default_target == "demo"


def test_accepts_integer_timeouts_as_float(tmp_path: Path) -> None:
    text = STAGING + "[targets.staging.timeouts]\nconnect_seconds = 60\n"
    timeouts = (
        load_config(write(tmp_path / "ok.toml", text)).targets["staging"].timeouts
    )
    assert timeouts.connect_seconds == 60.0
    assert isinstance(timeouts.connect_seconds, float)


def test_accepts_lowercase_method(tmp_path: Path) -> None:
    text = STAGING + '[[targets.staging.user_flows]]\nname = "a"\npath = "/"\n'
    text += 'method = "post"\n'
    flow = (
        load_config(write(tmp_path / "ok.toml", text)).targets["staging"].user_flows[0]
    )
    assert flow.method == "POST"


def test_accepts_demo_scenario_default(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.toml", 'default_target = "demo:error-spike"\n')
    assert load_config(path).default_target == "demo:error-spike"


def test_base_url_trailing_slash_removed(tmp_path: Path) -> None:
    text = '[targets.staging]\nbase_url = "http://127.0.0.1:8080/"\n'
    staging = load_config(write(tmp_path / "ok.toml", text)).targets["staging"]
    assert staging.base_url == "http://127.0.0.1:8080"


def test_endpoint_override(tmp_path: Path) -> None:
    text = STAGING + '[targets.staging.endpoints]\nhealth = "/status"\n'
    staging = load_config(write(tmp_path / "ok.toml", text)).targets["staging"]
    assert staging.url("health") == "http://127.0.0.1:8080/status"
    assert staging.url("readyz") == "http://127.0.0.1:8080/readyz"


# resolve_target


def test_resolve_named_target() -> None:
    config = load_config(EXAMPLE)
    assert config.resolve_target("staging") is config.targets["staging"]


def test_resolve_default_target() -> None:
    config = load_config(EXAMPLE)
    assert config.resolve_target().name == "staging"
    assert config.resolve_target("  ").name == "staging"


def test_resolve_demo() -> None:
    demo = Config().resolve_target("demo")
    assert demo.embedded
    assert demo.base_url is None
    assert demo.scenario == "healthy"
    assert demo.user_flows[0].name == "login"


def test_resolve_demo_scenario() -> None:
    demo = Config().resolve_target("demo:error-spike")
    assert demo.name == "demo"
    assert demo.scenario == "error-spike"


def test_resolve_unknown_demo_scenario() -> None:
    with pytest.raises(UsageError) as caught:
        Config().resolve_target("demo:meltdown")
    message = str(caught.value)
    assert "unknown demo scenario 'meltdown'" in message
    assert "db-outage, error-spike, healthy" in message


def test_resolve_url() -> None:
    target = Config().resolve_target("http://127.0.0.1:9000/")
    assert target.base_url == "http://127.0.0.1:9000"
    assert target.name == "http://127.0.0.1:9000/"
    assert not target.embedded


def test_resolve_url_with_credentials() -> None:
    with pytest.raises(UsageError) as caught:
        Config().resolve_target("http://ops:hunter22@127.0.0.1:9000")
    assert "carries credentials" in str(caught.value)
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize(
    "spec", ["ftp://127.0.0.1", "http://", "http://[::1", "http://127.0.0.1:70000"]
)
def test_resolve_invalid_url(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        Config().resolve_target(spec)
    assert "is not an http(s) URL" in str(caught.value)


def test_resolve_garbage_suggests() -> None:
    config = load_config(EXAMPLE)
    with pytest.raises(UsageError) as caught:
        config.resolve_target("stagin")
    message = str(caught.value)
    assert "unknown target 'stagin'" in message
    assert "did you mean 'staging'?" in message
    assert "http://127.0.0.1:8080" in message


def test_resolve_garbage_without_match() -> None:
    with pytest.raises(UsageError) as caught:
        Config().resolve_target("zzzz")
    assert "did you mean" not in str(caught.value)
    assert "use one of demo, demo:SCENARIO" in str(caught.value)


# Target.url


def test_url_named_endpoint() -> None:
    target = Target("x", "http://127.0.0.1:8080")
    assert target.url("metrics") == "http://127.0.0.1:8080/metrics"
    assert target.url("block_ip") == "http://127.0.0.1:8080/admin/security/block-ip"


def test_url_keeps_base_path() -> None:
    target = Target("x", "http://127.0.0.1:8080/veefore/")
    assert target.url("health") == "http://127.0.0.1:8080/veefore/health"


def test_url_plain_path() -> None:
    target = Target("x", "http://127.0.0.1:8080")
    assert target.url("/api/user") == "http://127.0.0.1:8080/api/user"


def test_url_path_without_slash_stays_on_host() -> None:
    target = Target("x", "http://example.com")
    assert target.url(".evil.test/x") == "http://example.com/.evil.test/x"


def test_url_before_start_raises() -> None:
    with pytest.raises(UsageError) as caught:
        Config().resolve_target("demo").url("health")
    assert "has no base URL yet" in str(caught.value)


# Secrets


def test_secret_env_names_default() -> None:
    assert Config().secret_env_names() == ["DATABASE_URL", "VEEFORE_ADMIN_TOKEN"]


def test_secret_env_names_configured(tmp_path: Path) -> None:
    text = '[secrets]\nenv = ["EXTRA_KEY"]\n[notify]\nwebhook_url_env = "HOOK"\n'
    text += STAGING + 'admin_token_env = "STAGING_TOKEN"\n'
    text += 'database_url_env = "STAGING_DB"\n'
    names = load_config(write(tmp_path / "ok.toml", text)).secret_env_names()
    assert names == [
        "DATABASE_URL",
        "EXTRA_KEY",
        "HOOK",
        "STAGING_DB",
        "STAGING_TOKEN",
        "VEEFORE_ADMIN_TOKEN",
    ]


def test_secret_env_names_example() -> None:
    names = load_config(EXAMPLE).secret_env_names()
    assert "INSTAGRAM_APP_SECRET" in names
    assert "VEERUNBOOK_WEBHOOK_URL" in names


def test_redactor_masks_configured_values(tmp_path: Path) -> None:
    text = STAGING + 'database_url_env = "STAGING_DB"\n'
    config = load_config(write(tmp_path / "ok.toml", text))
    environ = {"STAGING_DB": "sqlite:///srv/db-9f8e7d.sqlite", "UNRELATED": "visible"}
    redactor = config.redactor(environ)
    assert redactor.mask("open sqlite:///srv/db-9f8e7d.sqlite") == "open ***"
    assert redactor.mask("visible") == "visible"


def test_flow_json_env_fills_body(tmp_path: Path) -> None:
    path = tmp_path / "veerunbook.toml"
    path.write_text(
        '[targets.app]\nbase_url = "http://127.0.0.1:8080"\n'
        "[[targets.app.user_flows]]\n"
        'name = "login"\npath = "/api/auth/login"\nmethod = "POST"\n'
        'json = { email = "synthetic@example.com" }\n'
        'json_env = { password = "SYNTHETIC_PASSWORD" }\n'
    )
    config = load_config(path)
    flow = config.targets["app"].user_flows[0]
    filled = flow.body({"SYNTHETIC_PASSWORD": "s3cret-pw"})
    unset = flow.body({})
    assert filled == {"email": "synthetic@example.com", "password": "s3cret-pw"}
    assert unset == {"email": "synthetic@example.com"}
    assert "SYNTHETIC_PASSWORD" in config.secret_env_names()


def test_flow_json_env_rejects_bad_name(tmp_path: Path) -> None:
    path = tmp_path / "veerunbook.toml"
    path.write_text(
        '[targets.app]\nbase_url = "http://127.0.0.1:8080"\n'
        "[[targets.app.user_flows]]\n"
        'name = "login"\npath = "/login"\njson_env = { password = "NOT A NAME" }\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "targets.app.user_flows[0].json_env.password" in str(raised.value)
