"""Shared fixtures: where the recorded GBIF material lives; an environment free of credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

# ../shared/gbif beside the project's clone (CI lays it there); read in place, never copied.
SHARED_GBIF = Path(__file__).resolve().parents[2] / "shared" / "gbif"


@pytest.fixture(scope="session")
def shared_gbif() -> Path:
    """The folder of real GBIF responses and archives; skips (saying why) where absent."""
    if not (SHARED_GBIF / "api").is_dir():
        pytest.skip(f"recorded GBIF material not found at {SHARED_GBIF} (it sits beside the clone in CI)")
    return SHARED_GBIF


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in an empty folder with no GBIF variables and no netrc."""
    for name in ("GBIF_USER", "GBIF_PWD", "GBIF_EMAIL", "GBIF_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
