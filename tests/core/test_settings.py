from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings, get_settings


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("YUQING_DATABASE_URL", "postgresql://u@db/yq")
    monkeypatch.setenv("YUQING_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    s = get_settings()
    assert s.data_dir == tmp_path.resolve()
    assert s.effective_database_url == "postgresql://u@db/yq"
    assert s.retention_days == 30
    get_settings.cache_clear()


def test_default_database_is_sqlite_under_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("YUQING_DATABASE_URL", raising=False)
    s = Settings(data_dir=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'yuqing.db'}"


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YUQING_TIMEZONE", raising=False)
    (tmp_path / ".env").write_text("YUQING_TIMEZONE=Asia/Urumqi\n", encoding="utf-8")
    assert Settings().timezone == "Asia/Urumqi"


def test_secret_is_generated_once_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUQING_SECRET_KEY", raising=False)
    s = Settings(data_dir=tmp_path, secret_key=None)
    first = s.secret()
    assert first == s.secret()
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError):
        Settings(retention_days=0)
