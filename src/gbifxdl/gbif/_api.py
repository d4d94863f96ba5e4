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
from gbifxdl.gbif._http import ApiSettings, check, resolve_api_url, send
from gbifxdl.gbif._status import DownloadPage, DownloadStatus

log = logging.getLogger("gbifxdl.gbif")

DEFAULT_WAIT_TIMEOUT = 2 * 86400.0  # GBIF may take many hours on a large download

# Request properties GBIF accepts; rgbif's ``notification_address`` is mapped on the way.
_REQUEST_FIELDS = ("creator", "notificationAddresses", "sendNotification", "format", "predicate", "description", "checklistKey")


def load_payload(payload: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Return a predicate or request dict from a dict or a JSON file (a ConfigError if unreadable)."""
    if isinstance(payload, dict):
        return payload
    path = Path(payload)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"payload file {path} does not exist; give the path of a predicate JSON file") from None
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

    A request is recognised by its ``predicate`` or ``creator`` property. The predicate is
    checked locally first (:func:`gbifxdl.query.validate_predicate`).
    """
    data = dict(predicate_or_request)
    if "predicate" in data or "creator" in data:
        request = {name: data[name] for name in _REQUEST_FIELDS if name in data}
        extra = sorted(set(data) - set(_REQUEST_FIELDS) - {"notification_address"})
        if extra:
            raise ConfigError(
                f"request property {', '.join(map(repr, extra))} is unknown to GBIF; "
                f"keep only {', '.join(_REQUEST_FIELDS)}"
            )
        if "notification_address" in data and "notificationAddresses" not in data:
            request["notificationAddresses"] = data["notification_address"]
    else:
        request = {"predicate": data}
    request["creator"] = creator
    if email and not request.get("notificationAddresses"):
        request["notificationAddresses"] = [email]
    request.setdefault("notificationAddresses", [])
    if send_notification is not None:
        request["sendNotification"] = send_notification
    request.setdefault("sendNotification", bool(request["notificationAddresses"]))
    if format is not None:
        request["format"] = format
    request.setdefault("format", "DWCA")
    if request.get("predicate") is not None:
        from gbifxdl.query import validate_predicate  # H3's module; imported late to keep imports light

        validate_predicate(request["predicate"])
    return request


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
    data = load_payload(predicate_or_request)
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
    if not key:
        raise GbifError("GBIF accepted the request but sent no download key; check your downloads with `gbifxdl downloads`")
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


def status(key: str, *, api_url: str | None = None, settings: ApiSettings | None = None) -> DownloadStatus:
    """Return the current status of download ``key`` (a download key or its DOI)."""
    api = resolve_api_url(api_url)
    response = send("GET", f"{api}/occurrence/download/{quote(key.strip(), safe='/')}", settings=settings)
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
) -> DownloadStatus:
    """Return the status of ``key`` once it SUCCEEDED, polling at growing intervals.

    Raises DownloadFailed / DownloadErased if it ends otherwise, and WaitTimeout after
    ``timeout`` seconds. GBIF being briefly unreachable does not end the wait.
    ``on_status(status, elapsed)`` is called after every poll.
    """
    start = time.monotonic()
    interval = min_interval
    last_line = ""
    while True:
        elapsed = time.monotonic() - start
        try:
            st = status(key, api_url=api_url, settings=settings)
        except GbifUnavailable as exc:
            if elapsed >= timeout:
                raise
            log.warning("still waiting for %s: %s", key, exc)
        else:
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
                f"run `gbifxdl wait {key}` again later (or allow longer with --timeout)"
            )
        time.sleep(interval)
        interval = min(max_interval, interval * 1.5)


def cancel(
    key: str, *, credentials: Credentials | None = None, api_url: str | None = None, settings: ApiSettings | None = None
) -> DownloadStatus:
    """Return the download's status after asking GBIF to cancel it (only running ones change)."""
    api = resolve_api_url(api_url)
    credentials = credentials or load_credentials(api_url=api)
    response = send("DELETE", f"{api}/occurrence/download/request/{quote(key.strip())}", auth=credentials.auth, settings=settings)
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
    """Return GBIF's citation text for download ``key`` (with its DOI)."""
    api = resolve_api_url(api_url)
    response = send("GET", f"{api}/occurrence/download/{quote(key.strip(), safe='/')}/citation", settings=settings)
    check(response, what="read the citation", key=key)
    return response.text.strip()
