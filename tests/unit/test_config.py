"""CFG-1..CFG-8: layered configuration, credential precedence, and no secrets in text."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyprstream._secrets import redact_text, redact_uri
from hyprstream.cli import build_parser
from hyprstream.config import Config, Secret, load_config, parse_duration
from hyprstream.errors import ConfigError
from hyprstream.windows import DEFAULT_SIZES, WindowSize


def test_defaults_serve_loopback_on_the_embedded_store() -> None:
    c = load_config()
    assert (c.host, c.port, c.engine, c.cache_connection) == (
        "127.0.0.1",
        50051,
        "embedded",
        ":memory:",
    )
    assert c.windows == DEFAULT_SIZES
    assert c.running_window == WindowSize.parse("5m")
    assert c.data_dir == Path("hyprstream-data")


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "h.toml"
    f.write_text(
        '[server]\nport = 6000\nhost = "0.0.0.0"\n'
        '[storage]\nbackend = "adbc"\nconnection = "postgresql://db/metrics"\n'
        'options = { pool_max = "10", connect_timeout = "30" }\n'
        '[windows]\nsizes = ["1m", "5m"]\nallowed_lateness = "10m"\nretention = { "1m" = "2h" }\n'
    )
    c = load_config(config_file=f, flags={"port": 7000, "engine_options": {"pool_max": "3"}})
    assert c.port == 7000  # flag over file
    assert c.host == "0.0.0.0"  # file over default
    assert c.engine_options == {"pool_max": "3", "connect_timeout": "30"}
    assert [w.label for w in c.windows] == ["1m", "5m"]
    assert c.running_window.label == "1m"
    assert c.allowed_lateness_us == 600_000_000
    assert c.retention_for(WindowSize.parse("1m")) == 7_200_000_000


def test_credential_precedence_env_over_flags_over_uri() -> None:
    flags = {
        "engine": "adbc",
        "engine_connection": "postgresql://u:p@db/m",
        "engine_username": "flaguser",
        "engine_password": "flagpw",
    }
    env = {"HYPRSTREAM_ENGINE_USERNAME": "envuser", "HYPRSTREAM_ENGINE_PASSWORD": "envpw"}
    c = load_config(flags=flags, environ=env)
    assert c.engine_username == "envuser"
    assert c.engine_password == Secret("envpw")
    c = load_config(flags=flags, environ={})
    assert c.engine_username == "flaguser"
    assert c.engine_password == Secret("flagpw")


def test_secrets_never_show(tmp_path: Path) -> None:
    c = load_config(
        flags={
            "engine": "adbc",
            "engine_connection": "postgresql://me:hunter2@db/m?password=hunter3",
            "engine_password": "hunter4",
            "engine_options": {"password": "hunter5"},
        }
    )
    text = repr(c) + str(c.describe()) + str(c.engine_password) + f"{c.engine_password}"
    for secret in ("hunter2", "hunter3", "hunter4", "hunter5"):
        assert secret not in text
    assert c.engine_password is not None
    assert c.engine_password.reveal() == "hunter4"


def test_help_explains_every_flag_and_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPRSTREAM_ENGINE_PASSWORD", "hunter2")
    text = build_parser().format_help()
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--config",
        "--log-level",
        "--engine",
        "--engine-connection",
        "--engine-options",
        "--enable-cache",
        "--cache-engine",
        "--cache-connection",
        "--engine-username",
        "--engine-password",
        "--windows",
        "--running-window",
        "--allowed-lateness",
    ):
        assert flag in text
    parser = build_parser()
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert undocumented == []
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        ({"engine": "oracle"}, "--engine must be one of"),
        ({"engine": "adbc"}, "needs --engine-connection"),
        ({"port": 70000}, "--port must be between"),
        ({"port": "http"}, "port must be a number"),
        ({"log_level": "loud"}, "--log-level"),
        ({"cache_engine": "redis"}, "--cache-engine"),
        ({"windows": "5m,5m"}, "distinct"),
        ({"windows": "5m", "running_window": "1h"}, "running window"),
        ({"allowed_lateness": "soon"}, "invalid duration"),
        ({"series_index": "maybe"}, "series index setting must be on or off"),
    ],
)
def test_bad_settings_are_named(flags: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(flags=flags)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config_file=bad)
    bad.write_text("[sever]\nport = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(config_file=bad)
    bad.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(config_file=bad)


def test_durations() -> None:
    assert parse_duration("90s", what="x") == 90_000_000
    assert parse_duration("2d", what="x") == 172_800_000_000
    assert parse_duration(5, what="x") == 5_000_000
    assert parse_duration("0", what="x") == 0


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://me:pw@host:5432/db", "postgresql://me:***@host:5432/db"),
        (
            "postgresql://host/db?user=me&password=pw&pool_max=3",
            "postgresql://host/db?user=me&password=***&pool_max=3",
        ),
        ("postgresql://host/db", "postgresql://host/db"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_redact_text() -> None:
    text = 'could not connect to "postgresql://u:s3cret@h/db" (password=s3cret2 token: abc)'
    out = redact_text(text)
    assert "s3cret" not in out
    assert "s3cret2" not in out
    assert "abc" not in out


def test_config_is_immutable() -> None:
    c = Config()
    with pytest.raises(AttributeError):
        c.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, ["1h", "1d"]),
        ("all", ["5m", "30m", "1h", "1d"]),
        ("none", []),
        ("5m,1d", ["5m", "1d"]),
    ],
)
def test_quantile_windows(given: str | None, expected: list[str]) -> None:
    c = load_config(flags={"quantile_windows": given})
    assert [w.label for w in c.quantile_sizes] == expected


def test_quantiles_for_unknown_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="quantiles requested for 2h"):
        load_config(flags={"quantile_windows": "2h"})
    assert [w.label for w in load_config(flags={"windows": "1m,5m"}).quantile_sizes] == ["5m"]


def test_retention_for_unknown_sizes_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[windows]\nsizes = ["5m", "1h"]\nretention = { "30m" = "2d" }\n')
    with pytest.raises(ConfigError, match=r"retention names 30m, which are not window sizes"):
        load_config(config_file=toml)
    toml.write_text('[windows]\nsizes = ["5m", "1h"]\nretention = { "5m" = "2h" }\n')
    assert load_config(config_file=toml).retention_for(WindowSize.parse("5m")) == 7_200_000_000


def test_series_index_switch(tmp_path: Path) -> None:
    assert load_config().series_index is True
    assert load_config(flags={"series_index": "off"}).series_index is False
    path = tmp_path / "hyprstream.toml"
    path.write_text("[cache]\nseries_index = false\n", encoding="utf-8")
    assert load_config(config_file=path).series_index is False
    assert load_config(config_file=path, flags={"series_index": "on"}).series_index is True


def test_cache_enabled_is_a_switch_like_the_others(tmp_path: Path) -> None:
    path = tmp_path / "hyprstream.toml"
    path.write_text('[cache]\nenabled = "false"\n', encoding="utf-8")
    assert load_config(config_file=path).cache_enabled is False  # bool("false") was True
    assert load_config(flags={"cache_enabled": True}).cache_enabled is True
    with pytest.raises(ConfigError, match="cache enabled setting must be on or off"):
        load_config(flags={"cache_enabled": "sometimes"})
