"""Settings validation and the CLI's startup errors: one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync_core.settings import Settings, SettingsError, load_settings

from .conftest import random_aes_key


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WECOM_SYNC_")}
    return subprocess.run([sys.executable, "-m", "receiver.cli", *args], env={**clean, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("env, names", [
    ({"WECOM_SYNC_WECOM_ENCODING_AES_KEY": "tooshort"}, "WECOM_SYNC_WECOM_ENCODING_AES_KEY"),
    ({"WECOM_SYNC_WECOM_ENCODING_AES_KEY": "!" * 43}, "WECOM_SYNC_WECOM_ENCODING_AES_KEY"),
    ({"WECOM_SYNC_DATABASE_URL": "::not a url::"}, "WECOM_SYNC_DATABASE_URL"),
    ({"WECOM_SYNC_DATABASE_URL": "mysql://root@localhost/x"}, "WECOM_SYNC_DATABASE_URL"),
    ({"WECOM_SYNC_PORT": "eighty"}, "WECOM_SYNC_PORT"),
    ({"WECOM_SYNC_DIRECTION": "sideways"}, "WECOM_SYNC_DIRECTION"),
    ({"WECOM_SYNC_UPSTREAM_RECONCILE_CRON": "every day"}, "WECOM_SYNC_UPSTREAM_RECONCILE_CRON"),
])
def test_invalid_setting_stops_serve_with_one_line(env: dict[str, str], names: str,
                                                   tmp_path: Path) -> None:
    result = _cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    for value in env.values():  # the value may be a secret: never echoed
        assert value not in result.stderr or value in names


def test_settings_read_from_dotenv(tmp_path: Path) -> None:
    key = random_aes_key()
    (tmp_path / ".env").write_text(
        f"WECOM_SYNC_WECOM_CORP_ID=wwdotenv\nWECOM_SYNC_WECOM_ENCODING_AES_KEY={key}\n"
        "WECOM_SYNC_DOWNSTREAM_IGNORE_FIELDS=mobile, email\n", encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        settings = load_settings()
    finally:
        os.chdir(cwd)
    assert settings.wecom_corp_id == "wwdotenv"
    assert settings.downstream_ignore_fields == ("mobile", "email")
    assert key not in repr(settings)  # secrets are SecretStr


def test_defaults_match_the_contract() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database_url == "sqlite:///./wecom-sync.db"
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.wecom_api_base == "https://qyapi.weixin.qq.com"
    assert s.authing_api_base == "https://api.authing.cn"
    assert s.authing_organization_code == "wecom"
    assert s.direction == "upstream" and s.user_delete_policy == "resign"
    assert (s.delete_threshold_percent, s.delete_threshold_count) == (20, 100)
    assert s.upstream_reconcile_cron == "0 3 */2 * *"
    assert s.downstream_reconcile_cron == "0 6 * * *"
    assert s.downstream_update_policy == "overwrite" and s.downstream_ignore_fields == ()


def test_the_retry_budget_is_in_hours_for_outages(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.retry_window_hours == 6 and s.worker_backoff_cap_seconds == 300
    monkeypatch.setenv("WECOM_SYNC_RETRY_WINDOW_HOURS", "12")
    assert load_settings(_env_file=None).retry_window_hours == 12
    monkeypatch.setenv("WECOM_SYNC_RETRY_WINDOW_HOURS", "0")
    with pytest.raises(SettingsError, match="WECOM_SYNC_RETRY_WINDOW_HOURS"):
        load_settings(_env_file=None)


def test_require_names_the_missing_setting() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match="WECOM_SYNC_WECOM_CONTACT_SECRET"):
        s.require("wecom_contact_secret")


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = _cli("db", "upgrade", env={"WECOM_SYNC_DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout


def test_db_upgrade_reports_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:9/none?connect_timeout=1"
    result = _cli("db", "upgrade", env={"WECOM_SYNC_DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("wecom-sync: database upgrade")


@pytest.mark.parametrize("env, names", [
    ({"WECOM_SYNC_LOG_LEVEL": "verbose"}, ["WECOM_SYNC_LOG_LEVEL"]),
    ({"WECOM_SYNC_LOG_FORMAT": "xml"}, ["WECOM_SYNC_LOG_FORMAT"]),
    ({"WECOM_SYNC_USER_DELETE_POLICY": "shred"}, ["WECOM_SYNC_USER_DELETE_POLICY"]),
    ({"WECOM_SYNC_USERNAME_SOURCE": "email"}, ["WECOM_SYNC_USERNAME_SOURCE"]),
    ({"WECOM_SYNC_WECOM_API_BASE": "qyapi.weixin.qq.com"}, ["WECOM_SYNC_WECOM_API_BASE"]),
    ({"WECOM_SYNC_AUTHING_API_BASE": "ftp://api.authing.cn"}, ["WECOM_SYNC_AUTHING_API_BASE"]),
    ({"WECOM_SYNC_DELETE_THRESHOLD_PERCENT": "120"}, ["WECOM_SYNC_DELETE_THRESHOLD_PERCENT"]),
    ({"WECOM_SYNC_ADOPT_EXISTING": "perhaps"}, ["WECOM_SYNC_ADOPT_EXISTING"]),
    # Several bad settings: all named in the one line, not one per attempt.
    ({"WECOM_SYNC_LOG_LEVEL": "verbose", "WECOM_SYNC_PORT": "eighty",
      "WECOM_SYNC_DOWNSTREAM_RECONCILE_CRON": "at noon"},
     ["WECOM_SYNC_LOG_LEVEL", "WECOM_SYNC_PORT", "WECOM_SYNC_DOWNSTREAM_RECONCILE_CRON"]),
])
def test_every_bad_setting_is_named_in_one_line(env: dict[str, str], names: list[str],
                                                tmp_path: Path) -> None:
    result = _cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(n in lines[0] for n in names), result.stderr
    assert "Traceback" not in result.stderr


def test_missing_credentials_are_named_at_once(tmp_path: Path) -> None:
    result = _cli("serve", env={"WECOM_SYNC_WECOM_CORP_ID": "ww1",
                                "WECOM_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
                  cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in ("WECOM_SYNC_WECOM_CONTACT_SECRET", "WECOM_SYNC_AUTHING_ACCESS_KEY_ID",
                 "WECOM_SYNC_AUTHING_ACCESS_KEY_SECRET"):
        assert name in lines[0], result.stderr
    assert "WECOM_SYNC_WECOM_CORP_ID" not in lines[0]


def test_log_level_is_any_case_and_log_format_json(tmp_path: Path) -> None:
    s = Settings(_env_file=None, log_level="debug", log_format="json")  # type: ignore[call-arg]
    assert (s.log_level, s.log_format) == ("DEBUG", "json")
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]


def test_json_log_lines_are_one_object_each() -> None:
    import json
    import logging

    from sync_core.logs import JsonFormatter

    try:
        raise KeyError("boom")
    except KeyError as exc:
        record = logging.LogRecord("wecom_sync", logging.ERROR, __file__, 1,
                                   "database unavailable: %s", ("refused",), (type(exc), exc,
                                                                             exc.__traceback__))
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "ERROR" and out["message"] == "database unavailable: refused"
    assert "KeyError" in out["exception"] and out["logger"] == "wecom_sync"
