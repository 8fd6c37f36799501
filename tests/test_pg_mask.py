"""Tests of veerunbook.pg_mask: passwords in SQL text, in each of PostgreSQL's
string-literal forms, are masked, and other literals are left as they are.
"""

from __future__ import annotations

import pytest

from veerunbook.pg_collect import mask_sql as collect_mask_sql
from veerunbook.pg_mask import mask_sql
from veerunbook.pg_snapshot import backends_from_rows


@pytest.mark.parametrize(
    ("query", "masked"),
    [
        (
            "ALTER ROLE a PASSWORD 'plain-secret'",
            "ALTER ROLE a PASSWORD '***'",
        ),
        (
            "ALTER ROLE a PASSWORD 'it''s-secret' VALID UNTIL 'infinity'",
            "ALTER ROLE a PASSWORD '***' VALID UNTIL 'infinity'",
        ),
        (
            "ALTER ROLE a PASSWORD E'escape\\'-secret'",
            "ALTER ROLE a PASSWORD '***'",
        ),
        (
            "ALTER ROLE a PASSWORD e'lower-escape-secret'",
            "ALTER ROLE a PASSWORD '***'",
        ),
        (
            "ALTER ROLE a PASSWORD $$dollar-secret$$",
            "ALTER ROLE a PASSWORD '***'",
        ),
        (
            "ALTER ROLE a PASSWORD $pw$tagged-secret$pw$",
            "ALTER ROLE a PASSWORD '***'",
        ),
        (
            "ALTER ROLE a PASSWORD U&'unicode-secret'",
            "ALTER ROLE a PASSWORD '***'",
        ),
        (
            "CREATE ROLE a LOGIN PASSWORD\n'newline-secret'",
            "CREATE ROLE a LOGIN PASSWORD\n'***'",
        ),
        (
            "ALTER ROLE a PASSWORD /* c */ 'comment-secret'",
            "ALTER ROLE a PASSWORD /* c */ '***'",
        ),
        (
            "ALTER ROLE a PASSWORD /* a /* nested */ c */ 'nested-secret'",
            "ALTER ROLE a PASSWORD /* a /* nested */ c */ '***'",
        ),
        (
            "ALTER ROLE a PASSWORD -- c\n'line-comment-secret'",
            "ALTER ROLE a PASSWORD -- c\n'***'",
        ),
        (
            "ALTER ROLE a ENCRYPTED PASSWORD 'enc-secret' VALID UNTIL 'infinity'",
            "ALTER ROLE a ENCRYPTED PASSWORD '***' VALID UNTIL 'infinity'",
        ),
        (
            "create user b with password 'lower-case-secret'",
            "create user b with password '***'",
        ),
        (
            'ALTER USER "Weird""Name" PASSWORD \'quoted-role-secret\'',
            'ALTER USER "Weird""Name" PASSWORD \'***\'',
        ),
        (
            "ALTER ROLE a PASSWORD 'first'\n'continued-secret'",
            "ALTER ROLE a PASSWORD '***'\n'***'",
        ),
    ],
)
def test_role_password_forms(query: str, masked: str) -> None:
    assert mask_sql(query) == masked


def test_cut_off_password() -> None:
    assert mask_sql("ALTER ROLE app PASSWORD 'abc") == "ALTER ROLE app PASSWORD '***'"


def test_cut_off_dollar_password() -> None:
    assert mask_sql("ALTER ROLE a PASSWORD $pw$abc") == "ALTER ROLE a PASSWORD '***'"


def test_user_mapping_options() -> None:
    query = "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password 'fdw-pw')"
    assert mask_sql(query) == (
        "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password '***')"
    )


def test_sslpassword_option() -> None:
    query = "ALTER SERVER s OPTIONS (ADD sslpassword 'key-secret')"
    assert mask_sql(query) == "ALTER SERVER s OPTIONS (ADD sslpassword '***')"


def test_password_column_value() -> None:
    query = "UPDATE accounts SET password = 'column-secret' WHERE id = 1"
    assert mask_sql(query) == "UPDATE accounts SET password = '***' WHERE id = 1"


def test_set_password_setting() -> None:
    assert mask_sql("SET app.password TO 'setting-secret'") == (
        "SET app.password TO '***'"
    )


def test_dblink_spaced_password() -> None:
    query = "SELECT dblink_connect('hostaddr=192.0.2.4 password = spaced-secret')"
    assert mask_sql(query) == (
        "SELECT dblink_connect('hostaddr=192.0.2.4 password = ***')"
    )


def test_dblink_quoted_password() -> None:
    query = "SELECT * FROM dblink('host=h password=''a b'' user=u', 'SELECT 1')"
    assert mask_sql(query) == (
        "SELECT * FROM dblink('host=h password=*** user=u', 'SELECT 1')"
    )


def test_password_in_dollar_conninfo() -> None:
    query = "SELECT dblink_connect($$dbname=app password=dollar-conn-secret$$)"
    assert mask_sql(query) == "SELECT dblink_connect($$dbname=app password=***$$)"


def test_password_after_concatenation() -> None:
    query = "SELECT dblink_connect('host=h password=' || 'joined-secret')"
    assert mask_sql(query) == "SELECT dblink_connect('host=h password=' || '***')"


def test_url_password_in_literal() -> None:
    query = "CREATE SUBSCRIPTION s CONNECTION 'postgresql://rep:url-pw@192.0.2.5/db'"
    assert mask_sql(query) == (
        "CREATE SUBSCRIPTION s CONNECTION 'postgresql://rep:***@192.0.2.5/db'"
    )


def test_password_inside_do_block() -> None:
    query = (
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') "
        "THEN CREATE ROLE app LOGIN PASSWORD 'do-secret'; END IF; END $$"
    )
    assert mask_sql(query) == query.replace("'do-secret'", "'***'")


def test_password_inside_execute_string() -> None:
    query = "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''exec-secret'''; END $$"
    assert mask_sql(query) == (
        "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''***'''; END $$"
    )


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'it''s', E'a\\'b', $x$keep$x$, U&'d\\0061t' UESCAPE '!'",
        "SELECT a$b$c, $1, 'keep' FROM t WHERE note = 'password is reset'",
        "ALTER ROLE a PASSWORD NULL",
        "SELECT $1, $2 FROM accounts WHERE password_hash = $3",
        "SELECT 'x' /* unterminated comment password 'p'",
        "",
    ],
)
def test_other_text_unchanged(query: str) -> None:
    assert mask_sql(query) == query


def test_none_stays_none() -> None:
    assert mask_sql(None) is None


def test_masking_is_idempotent() -> None:
    query = "ALTER ROLE a PASSWORD E'x' ; SELECT dblink('password=''y''')"
    once = mask_sql(query)
    assert mask_sql(once) == once


def test_deep_nesting_is_masked() -> None:
    query = "ALTER ROLE a PASSWORD 'deep-secret'"
    for level in range(20):
        query = f"SELECT $t{level}${query}$t{level}$"
    masked = mask_sql(query)
    assert masked is not None
    assert "deep-secret" not in masked


def test_collect_uses_the_same_masking() -> None:
    query = "ALTER ROLE a PASSWORD $$dollar-secret$$"
    assert collect_mask_sql(query) == mask_sql(query)


def test_csv_rows_are_masked() -> None:
    rows = [{"pid": "5", "query": "ALTER ROLE r1 PASSWORD E'leak-secret'"}]
    assert backends_from_rows(rows)[0].query == "ALTER ROLE r1 PASSWORD '***'"
