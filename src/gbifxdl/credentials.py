"""GBIF account credentials: from arguments, the environment, ``.env``, ``~/.netrc`` or a prompt.

Sources, first found wins for each field:

1. explicit arguments (``load_credentials(user=..., password=...)``, ``-u``/``-w`` options);
2. environment variables ``GBIF_USER``, ``GBIF_PWD``, ``GBIF_EMAIL`` (as pygbif);
3. a ``.env`` file in the current folder (``KEY=VALUE`` lines, optional quotes, comments);
4. a ``~/.netrc`` entry for the API host (``$NETRC`` names another file), for user and password;
5. a prompt, only when standard input is a terminal.

The password is never printed, logged, stored or put in an exception message; it is
hidden from ``repr``.
"""

from __future__ import annotations

import getpass
import netrc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from gbifxdl.errors import CredentialsError

DEFAULT_API_URL = "https://api.gbif.org/v1"

__all__ = ["Credentials", "load_credentials", "read_dotenv"]


@dataclass(frozen=True)
class Credentials:
    """A GBIF username, its password and an optional e-mail for notifications."""

    user: str
    password: str = field(repr=False)
    email: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password='***', email={self.email!r})"

    __str__ = __repr__

    @property
    def auth(self) -> tuple[str, str]:
        """Return the ``(user, password)`` pair for HTTP Basic authentication."""
        return (self.user, self.password)


def read_dotenv(path: str | Path) -> dict[str, str]:
    """Return the ``KEY=VALUE`` pairs of a ``.env`` file (empty if it does not exist).

    Accepts ``export KEY=VALUE``, single or double quotes around the value, blank lines,
    ``#`` comment lines and `` #`` comments after an unquoted value.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return {}
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def _netrc_entry(host: str) -> tuple[str | None, str | None]:
    """Return (login, password) of the netrc entry for ``host``, or (None, None)."""
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    if not Path(path).is_file():
        return None, None
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        # The parser's message can quote a token of the file, which may be the password.
        lineno = getattr(exc, "lineno", None)
        where = f" (line {lineno})" if lineno else ""
        raise CredentialsError(
            f"cannot read {path}{where}: fix its syntax ('machine HOST login USER password PASS'), "
            "make it readable only by you (chmod 600), or remove the entry"
        ) from None
    if entry is None:
        return None, None
    login, _account, password = entry
    return login or None, password or None


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def load_credentials(
    *,
    user: str | None = None,
    password: str | None = None,
    email: str | None = None,
    api_url: str | None = None,
    prompt: bool = True,
    user_hint: str | None = None,
) -> Credentials:
    """Return GBIF credentials found in arguments, env, ``.env``, ``~/.netrc`` or a prompt.

    Raises :class:`~gbifxdl.errors.CredentialsError` saying where to put them when the
    username or password cannot be found and no prompt is possible. The message names
    only places that work everywhere (environment, ``.env``, ``~/.netrc``); ``user_hint``
    adds one the caller offers, e.g. ``"pass -u/--user"`` from a command that has it.
    """
    dotenv = read_dotenv(Path.cwd() / ".env")

    def pick(explicit: str | None, name: str) -> str | None:
        for value in (explicit, os.environ.get(name), dotenv.get(name)):
            if value:
                return value
        return None

    user = pick(user, "GBIF_USER")
    password = pick(password, "GBIF_PWD")
    email = pick(email, "GBIF_EMAIL")

    host = urlparse(api_url or os.environ.get("GBIF_API_URL") or DEFAULT_API_URL).hostname or "api.gbif.org"
    if user is None or password is None:
        login, netrc_password = _netrc_entry(host)
        if user is None:
            user = login
        # A netrc password belongs to its login only.
        if password is None and netrc_password and (login is None or login == user):
            password = netrc_password

    can_prompt = prompt and _stdin_is_tty()
    if user is None and can_prompt:
        user = input("GBIF username: ").strip() or None
    if user is None:
        raise CredentialsError(
            "no GBIF username found: set GBIF_USER (environment or a .env file in this folder), "
            + (f"{user_hint}, " if user_hint else "")
            + f"or add 'machine {host} login USER password PASS' to ~/.netrc"
        )
    if password is None and can_prompt:
        password = getpass.getpass(f"GBIF password for {user}: ") or None
    if password is None:
        raise CredentialsError(
            f"no GBIF password found for user {user!r}: set GBIF_PWD (environment or a .env file "
            f"in this folder), or add 'machine {host} login {user} password PASS' to ~/.netrc"
        )
    return Credentials(user=user, password=password, email=email)
