"""Credentials come from arguments, env, .env, ~/.netrc; the password never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from gbifxdl.credentials import Credentials, load_credentials, read_dotenv
from gbifxdl.errors import CredentialsError

SECRET = "Zq9-secret-Pw!"
API = "http://127.0.0.1:9/v1"


# every test runs in an empty folder with no GBIF variables and no netrc
pytestmark = pytest.mark.usefixtures("clean_env")


def _netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "netrc"
    path.write_text(text)
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))


def test_repr_and_str_hide_the_password() -> None:
    creds = Credentials("alice", SECRET, "a@example.org")
    assert SECRET not in repr(creds) and SECRET not in str(creds) and SECRET not in f"{creds}"
    assert "alice" in repr(creds) and creds.auth == ("alice", SECRET)


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GBIF_USER", "env-user")
    monkeypatch.setenv("GBIF_PWD", "env-pwd")
    creds = load_credentials(user="arg-user", password="arg-pwd", api_url=API, prompt=False)
    assert (creds.user, creds.password) == ("arg-user", "arg-pwd")


def test_environment_wins_over_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("GBIF_USER=file-user\nGBIF_PWD=file-pwd\nGBIF_EMAIL=f@example.org\n")
    monkeypatch.setenv("GBIF_PWD", "env-pwd")
    creds = load_credentials(api_url=API, prompt=False)
    assert (creds.user, creds.password, creds.email) == ("file-user", "env-pwd", "f@example.org")


def test_dotenv_quotes_comments_and_export(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "# my GBIF account\n\nexport GBIF_USER='bob'\nGBIF_PWD=\"p w#d\"\nGBIF_EMAIL=b@example.org  # mine\nNOEQUALS\n"
    )
    assert read_dotenv(clean_env / ".env") == {"GBIF_USER": "bob", "GBIF_PWD": "p w#d", "GBIF_EMAIL": "b@example.org"}
    creds = load_credentials(api_url=API, prompt=False)
    assert (creds.user, creds.password) == ("bob", "p w#d")


def test_netrc_entry_for_the_api_host(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _netrc(clean_env, monkeypatch, f"machine api.gbif.org login other password x\nmachine 127.0.0.1 login carol password {SECRET}\n")
    creds = load_credentials(api_url=API, prompt=False)
    assert (creds.user, creds.password) == ("carol", SECRET)


def test_netrc_password_of_another_login_is_not_used(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _netrc(clean_env, monkeypatch, f"machine 127.0.0.1 login carol password {SECRET}\n")
    with pytest.raises(CredentialsError) as info:
        load_credentials(user="dave", api_url=API, prompt=False)
    assert "dave" in str(info.value) and "GBIF_PWD" in str(info.value) and SECRET not in str(info.value)


def test_missing_credentials_say_where_to_put_them() -> None:
    with pytest.raises(CredentialsError) as info:
        load_credentials(api_url=API, prompt=False)
    message = str(info.value)
    assert "GBIF_USER" in message and ".env" in message and "netrc" in message


def test_no_prompt_when_stdin_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's stdin is not a TTY: asking would hang a batch job, so it must fail instead
    monkeypatch.setenv("GBIF_USER", "erin")
    with pytest.raises(CredentialsError, match="no GBIF password found for user 'erin'"):
        load_credentials(api_url=API, prompt=True)


def test_broken_netrc_error_does_not_quote_the_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _netrc(clean_env, monkeypatch, f"machine 127.0.0.1 login carol password\n{SECRET} garbage \"unterminated\n")
    try:
        creds = load_credentials(api_url=API, prompt=False)
    except CredentialsError as exc:
        assert SECRET not in str(exc) and "netrc" in str(exc)
    else:  # the parser accepted it: whatever it read, it must not leak through repr
        assert SECRET not in repr(creds)


def test_gbif_api_url_env_picks_the_netrc_host(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _netrc(clean_env, monkeypatch, "machine 127.0.0.1 login frank password fpw\n")
    monkeypatch.setenv("GBIF_API_URL", "http://127.0.0.1:8080/v1")
    assert load_credentials(prompt=False).user == "frank"
