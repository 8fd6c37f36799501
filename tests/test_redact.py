"""Secret masking tests, built on a real papermill run that leaked its credentials."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from veerunbook.config import Config
from veerunbook.redact import (
    MASK,
    RedactingFilter,
    Redactor,
    connection_secrets,
    mask_url,
    url_userinfo,
)

CASE = Path(__file__).parent / "fixtures" / "papermill-secret-in-output"

# The fake credentials of the recorded run: the database URL and the API token were
# passed with -p, and the password once more inside a base64 YAML blob passed with -b.
DSN = (
    "postgresql+psycopg2://runbook:Xk9%23vQ2%21rb-2026@db.veefore.internal:5432/veefore"
)
TOKEN = "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PASSWORD = "Xk9#vQ2!rb-2026"
PASSWORD_ENCODED = "Xk9%23vQ2%21rb-2026"
YAML_BLOB = "c210cF9wYXNzd29yZDogIlhrOSN2UTIhcmItMjAyNiIK"
LEAKS = [PASSWORD, PASSWORD_ENCODED, TOKEN, YAML_BLOB]
SERVICE_URL = "http://192.0.2.10:5000"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([DSN, TOKEN])


def read_case(name: str) -> str:
    return (CASE / name).read_text(encoding="utf-8")


# The recorded papermill run.


def test_fixture_leaks_as_recorded() -> None:
    notebook = read_case("papermill-output-unredacted.ipynb")
    log = read_case("papermill-stderr.log")
    assert notebook.count(PASSWORD) == 2
    assert notebook.count(PASSWORD_ENCODED) == 3
    assert notebook.count(TOKEN) == 3
    assert log.count(PASSWORD_ENCODED) == 1
    assert log.count(TOKEN) == 1
    assert YAML_BLOB in read_case("invocation.sh")


def test_yaml_blob_holds_password() -> None:
    decoded = base64.b64decode(YAML_BLOB).decode("utf-8")
    assert decoded == f'smtp_password: "{PASSWORD}"\n'


def test_redactor_derives_url_password(redactor: Redactor) -> None:
    assert redactor.secret_count == 3


@pytest.mark.parametrize("leak", LEAKS)
def test_notebook_masked(redactor: Redactor, leak: str) -> None:
    masked = redactor.mask(read_case("papermill-output-unredacted.ipynb"))
    assert leak not in masked


@pytest.mark.parametrize("leak", LEAKS)
def test_stderr_log_masked(redactor: Redactor, leak: str) -> None:
    assert leak not in redactor.mask(read_case("papermill-stderr.log"))


@pytest.mark.parametrize("leak", LEAKS)
def test_command_line_masked(redactor: Redactor, leak: str) -> None:
    assert leak not in redactor.mask(read_case("invocation.sh"))


def test_yaml_blob_masked(redactor: Redactor) -> None:
    command = f"papermill runbook.ipynb out.ipynb -b {YAML_BLOB} --log-output"
    masked = redactor.mask(command)
    assert masked == "papermill runbook.ipynb out.ipynb -b *** --log-output"


def test_masked_notebook_stays_json(redactor: Redactor) -> None:
    masked = json.loads(redactor.mask(read_case("papermill-output-unredacted.ipynb")))
    parameters = masked["metadata"]["papermill"]["parameters"]
    assert parameters["api_token"] == MASK
    assert parameters["smtp_password"] == MASK
    assert parameters["pg_dsn"] == MASK
    assert parameters["service_url"] == SERVICE_URL


def test_notebook_keeps_service_url(redactor: Redactor) -> None:
    masked = redactor.mask(read_case("papermill-output-unredacted.ipynb"))
    assert masked.count(SERVICE_URL) == 3


def test_log_keeps_diagnostics(redactor: Redactor) -> None:
    masked = redactor.mask(read_case("papermill-stderr.log"))
    assert "Passed unknown parameter: smtp_password" in masked
    assert f"GET {SERVICE_URL}/readyz" in masked
    assert "checking database db.veefore.internal:5432/veefore as runbook" in masked


def test_libpq_echo_masked(redactor: Redactor) -> None:
    line = (
        'DB check failed: invalid dsn: missing "=" after '
        f'"{DSN}" in connection info string'
    )
    masked = redactor.mask(line)
    assert masked == (
        'DB check failed: invalid dsn: missing "=" after "***" '
        "in connection info string"
    )


def test_mask_obj_on_notebook(redactor: Redactor) -> None:
    notebook = json.loads(read_case("papermill-output-unredacted.ipynb"))
    text = json.dumps(redactor.mask_obj(notebook))
    for leak in LEAKS:
        assert leak not in text
    assert SERVICE_URL in text


# Passwords in URLs and libpq keywords, with no secret declared.

URL_CASES = [
    (
        "postgresql://app:s3cr3t-pw@db.internal:5432/app",
        "postgresql://app:***@db.internal:5432/app",
    ),
    (
        "postgresql+psycopg2://app:p%40ss@db/app",
        "postgresql+psycopg2://app:***@db/app",
    ),
    ("mysql://root:pw@127.0.0.1:3306/shop", "mysql://root:***@127.0.0.1:3306/shop"),
    ("redis://:r3dis-pass@cache:6379/0", "redis://:***@cache:6379/0"),
    ("amqp://guest:guest@rabbit:5672/vhost", "amqp://guest:***@rabbit:5672/vhost"),
    (
        'connect to "postgresql://app:pw@db/app" failed: timeout',
        'connect to "postgresql://app:***@db/app" failed: timeout',
    ),
    (
        "primary mysql://a:x1@h1/db, replica mysql://b:y2@h2/db",
        "primary mysql://a:***@h1/db, replica mysql://b:***@h2/db",
    ),
]


@pytest.mark.parametrize(("text", "expected"), URL_CASES)
def test_url_password_masked(text: str, expected: str) -> None:
    assert Redactor().mask(text) == expected


@pytest.mark.parametrize(("text", "expected"), URL_CASES)
def test_mask_url(text: str, expected: str) -> None:
    assert mask_url(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        SERVICE_URL + "/readyz",
        "https://ops@example.com/x",
        "http://127.0.0.1:8080/path@v2",
        "sqlite:///srv/app.db",
        "ratio 3:2 at noon",
    ],
)
def test_url_without_password_unchanged(text: str) -> None:
    assert Redactor().mask(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "host=db port=5432 user=app password=s3cr3t dbname=app",
            "host=db port=5432 user=app password=*** dbname=app",
        ),
        (
            "password='two words' sslmode=require",
            "password=*** sslmode=require",
        ),
        ('PASSWORD = "x y"; host=db', "PASSWORD = ***; host=db"),
        ("password=ab", "password=***"),
    ],
)
def test_libpq_password_masked(text: str, expected: str) -> None:
    assert Redactor().mask(text) == expected


def test_mask_is_idempotent(redactor: Redactor) -> None:
    once = redactor.mask(read_case("papermill-stderr.log"))
    assert redactor.mask(once) == once


# Known values: length, late additions, environment.


def test_short_value_not_masked() -> None:
    redactor = Redactor(["abc"])
    assert redactor.secret_count == 0
    assert redactor.mask("abc abcd") == "abc abcd"


def test_four_character_value_masked() -> None:
    assert Redactor(["abcd"]).mask("abc abcd") == "abc ***"


def test_short_url_password_not_added_by_value() -> None:
    redactor = Redactor(["postgresql://u:%41%42%43@db/app"])
    assert redactor.secret_count == 1
    assert redactor.mask("ABC") == "ABC"


def test_add_after_construction() -> None:
    redactor = Redactor()
    assert redactor.mask(f"token {TOKEN}") == f"token {TOKEN}"
    redactor.add(TOKEN)
    assert redactor.mask(f"token {TOKEN}") == "token ***"


def test_add_url_adds_password() -> None:
    redactor = Redactor()
    redactor.add(DSN)
    assert redactor.secret_count == 2
    assert redactor.mask(f"smtp_password: {PASSWORD}") == "smtp_password: ***"


def test_add_ignores_duplicates_and_empty() -> None:
    redactor = Redactor([TOKEN])
    redactor.add(TOKEN)
    redactor.add("")
    assert redactor.secret_count == 1


def test_empty_redactor_is_truthy() -> None:
    assert Redactor()


def test_from_environment() -> None:
    environ = {"API_TOKEN": TOKEN, "EMPTY": "", "OTHER": "not-named-value"}
    redactor = Redactor.from_environment(["API_TOKEN", "EMPTY", "MISSING"], environ)
    assert redactor.secret_count == 1
    assert redactor.mask(TOKEN) == MASK
    assert redactor.mask("not-named-value") == "not-named-value"


# Passwords inside database URLs and libpq connection strings.

KEYWORD_DSN = "host=127.0.0.1 port=54329 dbname=appdb user=mon password=monpass-7777"


def test_keyword_dsn_adds_password() -> None:
    redactor = Redactor([KEYWORD_DSN])
    assert redactor.secret_count == 2
    assert redactor.mask("SELECT 'monpass-7777' AS note") == "SELECT '***' AS note"


def test_keyword_dsn_from_environment() -> None:
    environ = {"DATABASE_URL": KEYWORD_DSN}
    redactor = Redactor.from_environment(["DATABASE_URL"], environ)
    assert redactor.mask("auth failed for monpass-7777") == "auth failed for ***"


def test_keyword_dsn_from_config() -> None:
    redactor = Config().redactor({"DATABASE_URL": KEYWORD_DSN})
    assert redactor.mask("auth failed for monpass-7777") == "auth failed for ***"


def test_keyword_dsn_password_encoded_forms() -> None:
    redactor = Redactor(["host=db password='monpass 7777#'"])
    encoded = base64.b64encode(b"monpass 7777#").decode()
    assert redactor.mask("pw=monpass+7777%23") == "pw=***"
    assert redactor.mask("pw=monpass%207777%23") == "pw=***"
    assert encoded not in redactor.mask(f"Basic {encoded}")


def test_keyword_dsn_quoted_password() -> None:
    redactor = Redactor(["host=db password='mon pass\\'7777'"])
    assert redactor.mask("used mon pass'7777") == "used ***"


def test_keyword_dsn_sslpassword() -> None:
    redactor = Redactor(["host=db sslkey=/k.pem sslpassword=keyphrase-42"])
    assert redactor.mask("passphrase keyphrase-42") == "passphrase ***"


def test_keyword_dsn_libpq_rejects() -> None:
    # libpq rejects the trailing word, so the password is taken as written.
    redactor = Redactor(["host=db password=monpass-7777 trailing"])
    assert redactor.mask("used monpass-7777") == "used ***"


def test_token_with_equals_adds_nothing() -> None:
    assert Redactor(["dG9rZW4tdmFsdWU="]).secret_count == 1


@pytest.mark.parametrize(
    "password", ["Pl4nt#ed-pw", "Pl4nt?ed-pw", "Pl4nt#ed?pw", "pa/ss-Word4"]
)
def test_url_password_urllib_misreads(password: str) -> None:
    redactor = Redactor([f"postgresql://app:{password}@127.0.0.1:54329/appdb"])
    assert redactor.mask(f"used {password}") == "used ***"


def test_url_password_with_at_sign() -> None:
    # libpq reads "p4ss" as the password and "w0rd-9c@127.0.0.1" as the host.
    redactor = Redactor(["postgresql://app:p4ss@w0rd-9c@127.0.0.1/appdb"])
    assert redactor.mask("used p4ss@w0rd-9c") == "used ***"


def test_url_userinfo_masked_whole() -> None:
    redactor = Redactor(["postgresql://app:pa/ss-Word4@127.0.0.1:54329/appdb"])
    assert redactor.mask("userinfo app:pa/ss-Word4") == "userinfo ***"


def test_other_scheme_slash_password() -> None:
    redactor = Redactor(["mysql://app:pa/ss-Word4@127.0.0.1/appdb"])
    assert redactor.mask("used pa/ss-Word4") == "used ***"


def test_connection_secrets_of_keyword_dsn() -> None:
    assert connection_secrets(KEYWORD_DSN) == {"monpass-7777"}


def test_connection_secrets_of_plain_url() -> None:
    assert connection_secrets(DSN) == {PASSWORD}


def test_connection_secrets_of_misread_url() -> None:
    found = connection_secrets("postgresql://app:pa%2Fss/Word4@db/appdb")
    assert found == {
        "app:pa%2Fss/Word4",
        "app:pa/ss/Word4",
        "pa%2Fss/Word4",
        "pa/ss/Word4",
    }


def test_connection_secrets_of_empty_password() -> None:
    assert connection_secrets("postgresql://app:@db/appdb") == set()


def test_connection_secrets_of_token() -> None:
    assert connection_secrets(TOKEN) == set()


def test_url_userinfo_ends_at_last_at() -> None:
    assert url_userinfo("postgresql://app:p@ss/w@db/appdb") == "app:p@ss/w"


def test_url_userinfo_absent() -> None:
    assert url_userinfo("postgresql://db/appdb") is None


# Encoded forms.


def test_percent_encoded_forms() -> None:
    secret = "a b/c&d=e"
    redactor = Redactor([secret])
    assert redactor.mask("q=a%20b%2Fc%26d%3De") == "q=***"
    assert redactor.mask("q=a+b%2Fc%26d%3De") == "q=***"


def test_json_escaped_form() -> None:
    secret = 'pa"ss\\word-1'
    document = json.dumps({"source": f'x = "{secret}"'})
    masked = Redactor([secret]).mask(document)
    assert masked == json.dumps({"source": 'x = "***"'})


def test_json_unicode_escaped_form() -> None:
    secret = "pässwörd-2026"
    masked = Redactor([secret]).mask(json.dumps({"pw": secret}))
    assert masked == '{"pw": "***"}'


def test_base64_of_value() -> None:
    redactor = Redactor([TOKEN])
    encoded = base64.b64encode(TOKEN.encode()).decode().rstrip("=")
    assert encoded not in redactor.mask(f"Authorization: Basic {encoded}")


def test_base64url_blob_containing_value() -> None:
    # "??>" and "~" encode to "-" and "_" in the URL-safe alphabet.
    blob = base64.urlsafe_b64encode(f"x~~: ??>{PASSWORD} ~~~\n".encode()).decode()
    assert "-" in blob
    assert Redactor([PASSWORD]).mask(f"arg {blob} end") == "arg *** end"


def test_base64_blob_with_binary_bytes() -> None:
    blob = base64.b64encode(b"\x00\xff\xfe " + PASSWORD.encode()).decode()
    assert Redactor([PASSWORD]).mask(f"arg {blob} end") == "arg *** end"


def test_unrelated_base64_blob_kept() -> None:
    blob = base64.b64encode(b"harmless text, no secret here").decode()
    assert Redactor([PASSWORD]).mask(blob) == blob


# Nested data.


def test_mask_obj_nested() -> None:
    redactor = Redactor([TOKEN])
    data = {
        "headers": {"Authorization": f"Bearer {TOKEN}", "Accept": "text/plain"},
        "attempts": [TOKEN, 3, None, True, ("kept", TOKEN)],
        TOKEN: "key",
        7: "int key",
    }
    assert redactor.mask_obj(data) == {
        "headers": {"Authorization": "Bearer ***", "Accept": "text/plain"},
        "attempts": ["***", 3, None, True, ["kept", "***"]],
        "***": "key",
        7: "int key",
    }


def test_mask_obj_leaves_input_unchanged() -> None:
    data = {"token": [TOKEN]}
    Redactor([TOKEN]).mask_obj(data)
    assert data == {"token": [TOKEN]}


def test_mask_obj_url_password_in_list() -> None:
    masked = Redactor().mask_obj(["redis://:r3dis-pass@cache:6379/0"])
    assert masked == ["redis://:***@cache:6379/0"]


# The logging filter on a real logger.


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger outside the veerunbook tree writing to a string buffer."""
    logger = logging.getLogger("redact-filter-test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    for known in list(logger.filters):
        logger.removeFilter(known)


def test_filter_masks_arguments(
    captured: tuple[logging.Logger, io.StringIO], redactor: Redactor
) -> None:
    logger, stream = captured
    logger.addFilter(RedactingFilter(redactor))
    logger.info("connecting to %s with %s", DSN, {"token": TOKEN})
    assert stream.getvalue() == ("INFO connecting to *** with {'token': '***'}\n")


def test_filter_masks_traceback(
    captured: tuple[logging.Logger, io.StringIO], redactor: Redactor
) -> None:
    logger, stream = captured
    logger.addFilter(RedactingFilter(redactor))
    try:
        raise RuntimeError(f'invalid dsn: missing "=" after "{DSN}"')
    except RuntimeError:
        logger.exception("DB check failed for %s", SERVICE_URL)
    output = stream.getvalue()
    for leak in LEAKS:
        assert leak not in output
    assert f"ERROR DB check failed for {SERVICE_URL}\n" in output
    assert "Traceback (most recent call last):" in output
    assert 'RuntimeError: invalid dsn: missing "=" after "***"' in output


def test_filter_on_handler_masks_traceback(
    captured: tuple[logging.Logger, io.StringIO], redactor: Redactor
) -> None:
    logger, stream = captured
    logger.handlers[0].addFilter(RedactingFilter(redactor))
    try:
        raise KeyError(TOKEN)
    except KeyError:
        logger.error("lookup failed", exc_info=True)
    assert TOKEN not in stream.getvalue()
    assert "KeyError: '***'" in stream.getvalue()


def test_filter_survives_bad_format(
    captured: tuple[logging.Logger, io.StringIO], redactor: Redactor
) -> None:
    logger, stream = captured
    logger.addFilter(RedactingFilter(redactor))
    logger.warning("token %s and %s", TOKEN)
    assert stream.getvalue() == "WARNING token %s and %s ('***',)\n"


def test_filter_masks_url_without_known_secret(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.addFilter(RedactingFilter(Redactor()))
    logger.debug("retrying %s", "amqp://guest:guest@rabbit:5672/")
    assert stream.getvalue() == "DEBUG retrying amqp://guest:***@rabbit:5672/\n"


def test_json_escaped_slashes_masked() -> None:
    redactor = Redactor(["http://127.0.0.1:9/hooks/T0001/B0002/SECRETTOKEN123"])
    text = '{"url": "http:\\/\\/127.0.0.1:9\\/hooks\\/T0001\\/B0002\\/SECRETTOKEN123"}'
    assert "SECRETTOKEN123" not in redactor.mask(text)


def test_webhook_token_masked_alone() -> None:
    redactor = Redactor(["http://127.0.0.1:9/hooks/T0001/B0002/SECRETTOKEN123"])
    assert redactor.mask("token SECRETTOKEN123 rejected") == "token *** rejected"


def test_webhook_path_masked_alone() -> None:
    redactor = Redactor(["http://127.0.0.1:9/hooks/T0001/B0002/SECRETTOKEN123"])
    masked = redactor.mask("POST /hooks/T0001/B0002/SECRETTOKEN123 failed")
    assert masked == "POST /*** failed"


def test_short_path_segments_not_masked() -> None:
    redactor = Redactor(["http://127.0.0.1:9/services/T0001/B0002/SECRETTOKEN123"])
    assert redactor.mask("services T0001") == "services T0001"
