"""The GBIF occurrence download API: post a request, follow it, cancel it, list, cite."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from gbifxdl.credentials import Credentials, load_credentials
from gbifxdl.errors import (
    ConfigError,
    DownloadErased,
    DownloadFailed,
    GbifError,
    GbifUnavailable,
    TooManyDownloads,
    WaitTimeout,
)
from gbifxdl._gbif_http import ApiSettings, GbifUnreachable, check, resolve_api_url, send
from gbifxdl.gbif._key import KEY_PATTERN, check_key, is_doi
from gbifxdl.gbif._status import DownloadPage, DownloadStatus

log = logging.getLogger("gbifxdl.gbif")

DEFAULT_WAIT_TIMEOUT = 2 * 86400.0  # GBIF may take many hours on a large download
DEFAULT_MAX_OUTAGE = 6 * 3600.0  # a wait rides out GBIF being unreachable this long (maintenance, a lost network)


def load_payload(payload: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Return a predicate or request dict from a dict or a JSON file (a ConfigError if unreadable)."""
    if isinstance(payload, dict):
        return payload
    if not str(payload).strip():
        raise ConfigError("no payload file given: give the path of a predicate or request JSON file")
    path = Path(payload)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"payload file {path} does not exist; give the path of a predicate JSON file") from None
    except IsADirectoryError:
        raise ConfigError(f"payload {path} is a folder; give the path of a predicate JSON file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read payload {path} as JSON ({exc}); fix the file and try again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"payload {path} holds a JSON {type(data).__name__}, not an object: give a predicate or a request")
    return data


def make_request(
    predicate_or_request: dict[str, Any],
    *,
    creator: str,
    email: str | None = None,
    format: str | None = None,
    send_notification: bool | None = None,
) -> dict[str, Any]:
    """Return the JSON body to post: a full request is kept (creator set), a bare predicate wrapped.

    A request is recognised by its ``predicate``, ``creator`` or ``sql`` property; rgbif's
    spellings of the notification fields are mapped to GBIF's. The whole body is checked
    locally (:func:`gbifxdl.query.validate_request`) and a PredicateError names the faulty part.
    """
    from gbifxdl import _terms as terms
    from gbifxdl.query import validate_request  # imported late to keep imports light

    data = dict(predicate_or_request)
    if {"predicate", "creator", "sql"} & set(data):
        request = {name: value for name, value in data.items() if name not in terms.REQUEST_ALIASES}
        for alias, name in terms.REQUEST_ALIASES.items():
            if alias in data and name not in request:
                request[name] = data[alias]
        if isinstance(request.get("notificationAddresses"), str):
            request["notificationAddresses"] = [request["notificationAddresses"]]
    else:
        request = {"predicate": data}
    request["creator"] = creator
    if email and not request.get("notificationAddresses"):
        request["notificationAddresses"] = [email]
    request.setdefault("notificationAddresses", [])
    if send_notification is not None:
        request["sendNotification"] = send_notification
    request.setdefault("sendNotification", False)  # one default, as `run` and the config's [source] notification
    if format is not None:
        request["format"] = format
    request.setdefault("format", "DWCA")
    validate_request(request)
    return request


def check_payload(
    predicate_or_request: dict[str, Any] | str | Path, *, format: str | None = None, send_notification: bool | None = None
) -> dict[str, Any]:
    """Return the payload (read if a path) once it is known to make a valid request.

    Everything is checked locally, before any credential is asked for or anything is sent:
    a missing or unreadable file, bad JSON, unknown properties, the format and the predicate.
    """
    data = load_payload(predicate_or_request)
    make_request(data, creator="gbifxdl-check", format=format, send_notification=send_notification)
    return data


def post_request(
    predicate_or_request: dict[str, Any] | str | Path,
    *,
    credentials: Credentials | None = None,
    api_url: str | None = None,
    format: str | None = None,
    send_notification: bool | None = None,
    settings: ApiSettings | None = None,
) -> str:
    """Return the download key GBIF gives for a predicate or a full request (dict or JSON file).

    A request's ``creator`` names the GBIF user when no credentials are given.
    """
    api = resolve_api_url(api_url)
    data = check_payload(predicate_or_request, format=format, send_notification=send_notification)
    if credentials is None:
        credentials = load_credentials(user=data.get("creator") if "predicate" in data else None, api_url=api)
    body = make_request(data, creator=credentials.user, email=credentials.email, format=format, send_notification=send_notification)
    response = send("POST", f"{api}/occurrence/download/request", json=body, auth=credentials.auth, settings=settings, retry_429=False)
    if response.status_code in (420, 429):
        raise TooManyDownloads(
            _too_many_message(credentials, api, settings, response.text), status=response.status_code, body=response.text
        )
    check(response, what="post the download request")
    key = response.text.strip().strip('"')  # the bare key, although labelled application/json
    if not KEY_PATTERN.fullmatch(key):
        got = f"{_one_line(key)[:80]!r}" if key else "nothing"
        raise GbifError(
            f"{api} accepted the request but answered {got} instead of a download key; check the API URL "
            "(--api-url or GBIF_API_URL), then list your downloads with `gbifxdl downloads`"
        )
    log.info("GBIF download key %s", key)
    return key


def _too_many_message(credentials: Credentials, api: str, settings: ApiSettings | None, reason: str) -> str:
    """Return the 420 message naming the running downloads and how to cancel one."""
    try:
        running = [d for d in list_downloads(credentials=credentials, api_url=api, limit=100, settings=settings) if d.is_running]
    except GbifError:
        running = []
    names = "; ".join(d.summary() for d in running) or "none listed"
    example = running[-1].key if running else "KEY"
    return (
        f"GBIF refused a new download: user {credentials.user} already runs the most simultaneous "
        f"downloads allowed ({' '.join(reason.split())[:200]}). Running now: {names}. "
        f"Wait for one to finish (`gbifxdl wait KEY`) or cancel one with `gbifxdl cancel {example}`"
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def status(key: str, *, api_url: str | None = None, settings: ApiSettings | None = None) -> DownloadStatus:
    """Return the current status of download ``key`` (a download key or its DOI)."""
    key = check_key(key)
    api = resolve_api_url(api_url)
    response = send("GET", f"{api}/occurrence/download/{quote(key, safe='/')}", settings=settings)
    check(response, what="read the download status", key=key)
    try:
        return DownloadStatus.from_json(response.json())
    except ValueError:
        raise GbifError(f"GBIF sent an unreadable status for {key}: {response.text[:200]!r}; try again later") from None


def raise_if_unsuccessful(st: DownloadStatus) -> None:
    """Raise DownloadFailed or DownloadErased when the download ended without a usable archive."""
    if st.failed:
        raise DownloadFailed(
            f"GBIF download {st.key} ended as {st.status}; see https://www.gbif.org/occurrence/download/{st.key} "
            "and post the request again (`gbifxdl post`)",
            status=None,
        )
    if st.erased:
        raise DownloadErased(
            f"GBIF has erased the archive of download {st.key} (erase date {st.erase_after}); post the same "
            "request again for a fresh download" + (f" (cite the old one as doi:{st.doi})" if st.doi else ""),
        )


def _format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def wait(
    key: str,
    *,
    api_url: str | None = None,
    timeout: float = DEFAULT_WAIT_TIMEOUT,
    min_interval: float = 30.0,
    max_interval: float = 300.0,
    progress: bool = True,
    settings: ApiSettings | None = None,
    on_status: Callable[[DownloadStatus, float], None] | None = None,
    max_outage: float = DEFAULT_MAX_OUTAGE,
) -> DownloadStatus:
    """Return the status of ``key`` once it SUCCEEDED, polling at growing intervals.

    Raises DownloadFailed / DownloadErased if it ends otherwise, and WaitTimeout after
    ``timeout`` seconds. GBIF answering 5xx does not end the wait; nor, once GBIF has
    answered one poll, does a lost network or a host name that stops resolving, for up to
    ``max_outage`` seconds in a row. A first poll that cannot reach GBIF at all (no
    network, a wrong API URL) fails at once. ``on_status(status, elapsed)`` is called
    after every poll.
    """
    key = check_key(key)
    _check_wait_numbers(timeout=timeout, min_interval=min_interval, max_interval=max_interval, max_outage=max_outage)
    start = time.monotonic()
    interval = min_interval
    last_line = ""
    contacted = False
    down_since: float | None = None
    while True:
        elapsed = time.monotonic() - start
        try:
            st = status(key, api_url=api_url, settings=settings)
        except GbifUnavailable as exc:
            if isinstance(exc, GbifUnreachable) and not contacted:
                raise  # never reached GBIF from here: say so now rather than in hours
            now = time.monotonic()
            down_since = now if down_since is None else down_since
            if elapsed >= timeout or now - down_since > max_outage:
                raise GbifUnavailable(
                    f"gave up waiting for GBIF download {key}: GBIF has been unreachable for "
                    f"{_format_elapsed(now - down_since)} ({exc})"
                ) from None
            # only the problem: the advice to "run the same command again" is not for now
            log.warning("still waiting for %s: %s; next try in %.0f s", key, str(exc).split("; ")[0], interval)
        else:
            contacted, down_since = True, None
            if on_status is not None:
                on_status(st, elapsed)
            if progress:
                line = f"GBIF download {key}: {st.status} after {_format_elapsed(elapsed)}"
                # On a terminal the line is rewritten in place; in a log, one line per change.
                if sys.stderr.isatty():
                    print(f"\r{line}   ", end="" if st.is_running else "\n", file=sys.stderr, flush=True)
                elif st.status != last_line:
                    print(line, file=sys.stderr, flush=True)
                    last_line = st.status
            if not st.is_running:
                raise_if_unsuccessful(st)
                return st
        if elapsed + interval > timeout:
            if progress and sys.stderr.isatty():
                print(file=sys.stderr)
            raise WaitTimeout(
                f"GBIF download {key} is not ready after {_format_elapsed(elapsed)}; nothing is lost: "
                f"run the same command again later to keep waiting (`gbifxdl wait {key} --timeout SECONDS` "
                "waits longer)"
            )
        time.sleep(interval)
        interval = min(max_interval, interval * 1.5)


def _check_wait_numbers(**values: float) -> None:
    """Raise ConfigError unless every waiting time is a number >= 0 and the intervals are > 0."""
    for name, value in values.items():
        positive = name.endswith("interval")
        if not isinstance(value, (int, float)) or value != value or value < 0 or (positive and value == 0):
            raise ConfigError(f"{name} = {value!r}: give a number of seconds {'above' if positive else 'at least'} 0")
    if values["max_interval"] < values["min_interval"]:
        raise ConfigError(
            f"max_interval ({values['max_interval']}) is below min_interval ({values['min_interval']}); "
            "give a longest polling interval at least as long as the first"
        )


def _key_not_doi(key: str, api: str, settings: ApiSettings | None) -> str:
    """Return the download key of ``key``, asking GBIF for it when a DOI was given."""
    key = check_key(key)
    return status(key, api_url=api, settings=settings).key if is_doi(key) else key


def cancel(
    key: str, *, credentials: Credentials | None = None, api_url: str | None = None, settings: ApiSettings | None = None
) -> DownloadStatus:
    """Return the download's status after asking GBIF to cancel it (only running ones change)."""
    api = resolve_api_url(api_url)
    key = check_key(key)
    credentials = credentials or load_credentials(api_url=api)
    key = _key_not_doi(key, api, settings)
    response = send("DELETE", f"{api}/occurrence/download/request/{quote(key)}", auth=credentials.auth, settings=settings)
    check(response, what=f"cancel download {key}", key=key)
    return status(key, api_url=api, settings=settings)


def list_downloads(
    *,
    credentials: Credentials | None = None,
    api_url: str | None = None,
    limit: int = 20,
    offset: int = 0,
    settings: ApiSettings | None = None,
) -> DownloadPage:
    """Return one page of the user's downloads, newest first (iterable of DownloadStatus)."""
    api = resolve_api_url(api_url)
    credentials = credentials or load_credentials(api_url=api)
    response = send(
        "GET",
        f"{api}/occurrence/download/user/{quote(credentials.user)}",
        params={"limit": limit, "offset": offset},
        auth=credentials.auth,
        settings=settings,
    )
    check(response, what=f"list the downloads of {credentials.user}")
    try:
        return DownloadPage.from_json(response.json())
    except (ValueError, AttributeError):
        raise GbifError(f"GBIF sent an unreadable download list: {response.text[:200]!r}; try again later") from None


def citation(key: str, *, api_url: str | None = None, settings: ApiSettings | None = None) -> str:
    """Return GBIF's citation text for download ``key`` (a key or its DOI)."""
    api = resolve_api_url(api_url)
    key = _key_not_doi(key, api, settings)
    response = send("GET", f"{api}/occurrence/download/{quote(key)}/citation", settings=settings)
    check(response, what="read the citation", key=key)
    return response.text.strip()
