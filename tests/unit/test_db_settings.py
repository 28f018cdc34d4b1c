"""The database timeouts and the readiness cache: settings validated by name, passed to the container and the
driver, and the readiness result reused for SPRONGUS_READY_MAX_AGE seconds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sprongus.adapters.peewee.db import open_postgres
from sprongus.adapters.peewee.postgres import REPLY_GRACE, server_database
from sprongus.domain.errors import ConfigError
from sprongus.entrypoints.api.health import Readiness
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.profiles import container_config

SETTINGS = ("SPRONGUS_DB_STATEMENT_TIMEOUT", "SPRONGUS_DB_CONNECT_TIMEOUT", "SPRONGUS_READY_MAX_AGE")


def test_defaults_reach_the_container_configuration() -> None:
    settings = Settings.from_mapping({"SPRONGUS_ENV": "test"})
    assert (settings.db_statement_timeout, settings.db_connect_timeout, settings.ready_max_age) == (5.0, 5.0, 10.0)
    config = container_config(Settings.from_mapping({
        "SPRONGUS_ENV": "test", "SPRONGUS_DB_STATEMENT_TIMEOUT": "2.5", "SPRONGUS_DB_CONNECT_TIMEOUT": "3",
        "SPRONGUS_READY_MAX_AGE": "0"}))
    assert (config["database"]["statement_timeout"], config["database"]["connect_timeout"]) == (2.5, 3.0)
    assert config["api"]["ready_max_age"] == 0.0


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("raw", ["abc", "-1", "nan", "inf", "1e9", "5s"])
def test_a_bad_value_is_refused_naming_the_setting(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_mapping({"SPRONGUS_ENV": "test", name: raw})
    assert str(info.value).startswith(f"{name}: must be ")


@pytest.mark.parametrize(("name", "raw"), [("SPRONGUS_DB_STATEMENT_TIMEOUT", "0"),
                                           ("SPRONGUS_DB_CONNECT_TIMEOUT", "1")])  # libpq waits 2 s at least
def test_a_timeout_below_its_floor_is_refused(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: must be between"):
        Settings.from_mapping({"SPRONGUS_ENV": "test", name: raw})


def test_the_driver_gets_the_timeouts_and_keepalives_and_migrations_no_statement_timeout() -> None:
    url = "postgresql://app@db.internal:5432/vault?options=-c%20search_path%3Dvault&keepalives_idle=60"
    server = server_database(url, connect_timeout=2.5, statement_timeout=1.5)
    params = server.connect_params
    assert params["connect_timeout"] == "3"
    assert params["options"] == "-c search_path=vault -c statement_timeout=1500"  # the URL's options kept, ours last
    assert params["keepalives"] == "1" and "keepalives_idle" not in params  # the URL's own keepalive setting wins
    assert server.reply_timeout == 1.5 + REPLY_GRACE

    migrations = server_database(url, connect_timeout=5, statement_timeout=None)
    assert "options" not in migrations.connect_params and migrations.reply_timeout is None


def test_readiness_is_checked_at_most_once_per_max_age_and_a_failure_is_not_an_exception() -> None:
    now, calls = [0.0], {"database": 0, "rateLimitStore": 0}

    def database() -> None:
        calls["database"] += 1
        raise OSError("refused")

    def limiter() -> bool:
        calls["rateLimitStore"] += 1
        return True

    probe = Readiness({"database": database, "rateLimitStore": limiter}, 10.0, clock=lambda: now[0])
    assert probe.report() == {"database": False, "rateLimitStore": True}
    now[0] = 9.9
    assert probe.report() == {"database": False, "rateLimitStore": True}
    assert calls == {"database": 1, "rateLimitStore": 1}
    now[0] = 10.0
    probe.report()
    assert calls == {"database": 2, "rateLimitStore": 2}


CANARY = "canary-db-pass-3f9a"
UNREADABLE = [f"postgresql://app:{CANARY}%ZZ@127.0.0.1/db", f"postgresql://app:%G{CANARY}@127.0.0.1/db",
              f"postgresql://app:{CANARY}@127.0.0.1/db?sslmode=%Q{CANARY}", f"postgresql://app:%ff{CANARY}@h/db"]


@pytest.mark.parametrize("url", UNREADABLE)
def test_a_url_libpq_cannot_read_is_refused_without_repeating_any_of_it(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^SPRONGUS_DATABASE_URL: libpq cannot read it") as info:
        open_postgres(url)
    assert CANARY not in str(info.value) and info.value.__suppress_context__


def test_an_unknown_url_parameter_is_named_as_such_not_as_a_bad_escape() -> None:
    with pytest.raises(ConfigError, match="not one of libpq's connection parameters") as info:
        open_postgres(f"postgresql://app:{CANARY}@127.0.0.1/db?sslmod{CANARY}=require")
    assert CANARY not in str(info.value) and "%" not in str(info.value)


@pytest.mark.parametrize("args", [["secrets", "list", "project:p1"], ["db", "upgrade"]])
def test_the_cli_says_so_as_a_configuration_error_even_with_debug_tracebacks(tmp_path: object, args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update(SPRONGUS_HOME=str(tmp_path), SPRONGUS_KEY_PROVIDER="file", SPRONGUS_DEBUG="1",
               SPRONGUS_DATABASE_URL=UNREADABLE[0])
    done = subprocess.run([sys.executable, "-m", "sprongus.entrypoints.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "SPRONGUS_DATABASE_URL: libpq cannot read it" in done.stderr
    assert CANARY not in done.stderr + done.stdout


TYPOS = [("sslmode", f"requre{CANARY}"), ("sslmode", "DISABLE"), ("target_session_attrs", "READ-WRITE"),
         ("gssencmode", CANARY), ("channel_binding", ""), ("load_balance_hosts", "round-robin"),
         ("sslnegotiation", "tls"), ("sslcertmode", "yes"), ("ssl_min_protocol_version", "TLSv1.4"),
         ("ssl_max_protocol_version", "SSLv3"), ("keepalives_idle", f"30s{CANARY}"), ("keepalives_idle", "-1"),
         ("keepalives_idle", "99999999999"), ("keepalives_count", "128"), ("tcp_user_timeout", ""),
         ("keepalives_interval", "0x10"), ("keepalives_count", "\uff11\uff12")]  # full-width digits


@pytest.mark.parametrize(("name", "value"), TYPOS)
def test_a_setting_libpq_refuses_only_when_it_connects_is_a_configuration_error_at_once(name: str, value: str) -> None:
    """libpq refused these at the first connection, which read as a database outage (exit 8, 503) for ever."""
    with pytest.raises(ConfigError, match=rf"^SPRONGUS_DATABASE_URL: {name} must be ") as info:
        open_postgres(f"postgresql://app:{CANARY}@127.0.0.1/db?{name}={value}")
    assert CANARY not in str(info.value)


def test_libpq_accepts_every_setting_the_check_lets_through_and_refuses_every_typo() -> None:
    """Against the real libpq and server: no value the check allows is one libpq refuses as invalid (an allowed
    word may still fail for its own reason, such as sslmode=require on a server without TLS), and every typo the
    check refuses, libpq refuses too."""
    import psycopg

    from sprongus.adapters.peewee.conninfo_values import _WORDS, check_conninfo_values
    from tests.pg import HOST, PORT, SUPERUSER, require_postgres

    require_postgres()
    allowed = [(name, word) for name, words in _WORDS.items() for word in words]
    allowed += [("ssl_min_protocol_version", "tlsv1.2"), ("ssl_max_protocol_version", ""),
                ("keepalives_idle", " 7 "), ("keepalives_idle", "+30"), ("keepalives", "0"), ("keepalives", "-1"),
                ("tcp_user_timeout", "1000"), ("tcp_user_timeout", "-5"), ("keepalives_count", "127")]
    url = f"postgresql://{SUPERUSER}@{HOST}:{PORT}/postgres"
    for name, word in allowed:
        check_conninfo_values({name: word})
        try:
            psycopg.connect(url, connect_timeout=5, **{name: word}).close()
        except psycopg.OperationalError as exc:
            assert "invalid" not in str(exc).lower(), (name, word, str(exc))
    for name, word in TYPOS:
        with pytest.raises(psycopg.OperationalError, match=r"(?i)invalid"):
            psycopg.connect(url, connect_timeout=5, **{name: word.replace(CANARY, "")}).close()


def test_the_cli_calls_a_typo_in_a_setting_a_configuration_error_not_an_outage(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update(SPRONGUS_HOME=str(tmp_path), SPRONGUS_KEY_PROVIDER="file",
               SPRONGUS_DATABASE_URL=f"postgresql://app:{CANARY}@127.0.0.1:5432/db?sslmode=verify_full")
    done = subprocess.run([sys.executable, "-m", "sprongus.entrypoints.cli", "secrets", "list", "project:p1"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "SPRONGUS_DATABASE_URL: sslmode must be one of disable, allow, prefer, require, verify-ca, " \
           "verify-full" in done.stderr
    assert CANARY not in done.stderr + done.stdout and "verify_full" not in done.stderr
