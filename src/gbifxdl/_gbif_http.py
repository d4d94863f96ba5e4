"""HTTP to the GBIF API: base URL, retries with backoff, and HTTP errors turned into typed ones."""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests

from gbifxdl._meta import USER_AGENT
from gbifxdl.errors import (
    AuthenticationError,
    DownloadErased,
    DownloadNotReady,
    GbifError,
    GbifUnavailable,
    PredicateRejected,
    TooManyDownloads,
)

log = logging.getLogger("gbifxdl.gbif")

DEFAULT_API_URL = "https://api.gbif.org/v1"


@dataclass(frozen=True)
class ApiSettings:
    """How patiently gbifxdl talks to GBIF: retries, backoff and timeouts."""

    retries: int = 5  # extra attempts after a 5xx answer or a connection failure
    backoff: float = 2.0  # seconds before the first retry, doubled after each one
    max_backoff: float = 120.0
    timeout: float = 60.0  # seconds between two bytes of an answer
    connect_timeout: float = 15.0  # seconds to open a connection


DEFAULT_SETTINGS = ApiSettings()


def resolve_api_url(api_url: str | None = None) -> str:
    """Return the API base URL: the argument, else ``$GBIF_API_URL``, else GBIF's, without a trailing slash."""
    url = api_url or os.environ.get("GBIF_API_URL") or DEFAULT_API_URL
    return url.rstrip("/")


class GbifUnreachable(GbifUnavailable):
    """GBIF's host name does not resolve, or nothing listens at the API URL: not retried."""

    def __init__(self, message: str, *, reason: str, host: str):
        super().__init__(message)
        self.reason = reason  # "dns" or "refused"
        self.host = host


# connect() errors that mean "not reachable from here now" rather than "GBIF is busy"
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED: "refused", errno.ENETUNREACH: "refused", errno.EHOSTUNREACH: "refused"}


def _unreachable_reason(exc: BaseException) -> str | None:
    """Return "dns" or "refused" when ``exc`` (requests' wrapper chain) is one, else None."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, socket.gaierror):
            return "dns"
        if isinstance(node, OSError) and node.errno in _UNREACHABLE_ERRNOS:
            return _UNREACHABLE_ERRNOS[node.errno]
        reason = getattr(node, "reason", None)
        nested = node.args[0] if node.args and isinstance(node.args[0], BaseException) else None
        node = nested or (reason if isinstance(reason, BaseException) else None) or node.__cause__ or node.__context__
    return None


def unreachable_error(url: str, reason: str) -> GbifUnreachable:
    """Return the one-line error for a host that does not resolve or refuses connections."""
    parsed = urlparse(url)
    host = parsed.hostname or parsed.netloc
    base = f"{parsed.scheme}://{parsed.netloc}"
    if reason == "dns":
        problem = f"the host name {host} does not resolve (no network, or a wrong API URL {base})"
    else:
        problem = f"connection refused by {parsed.netloc} (nothing listens at {base}, or no route to it)"
    return GbifUnreachable(
        f"cannot reach GBIF: {problem}; check your network connection and the API URL "
        "(--api-url or GBIF_API_URL), then run the same command again",
        reason=reason, host=host,
    )


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _describe(exc: Exception) -> str:
    """Return a short human reason for a connection failure (requests' own text is a paragraph)."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("timed out", "timed out"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed by the server"),
    ):
        if needle in text:
            return f"{type(exc).__name__}: {reason}"
    return f"{type(exc).__name__}: {_one_line(text, 120)}"


def send(
    method: str,
    url: str,
    *,
    settings: ApiSettings | None = None,
    auth: tuple[str, str] | None = None,
    retry_429: bool = True,
    **kwargs: Any,
) -> requests.Response:
    """Return GBIF's answer to one request, retrying 5xx answers and broken connections.

    A 429 is retried too (after its ``Retry-After``) unless ``retry_429`` is false: on a
    download request 429 means "too many downloads", which waiting seconds will not fix.
    Raises :class:`GbifUnavailable` once the retries are spent. Other answers, errors
    included, are returned for :func:`check` to judge. POSTs are retried as well: GBIF
    answers an identical request within 48 h with the same key, so none is posted twice.

    A host name that does not resolve, or a refused connection, raises
    :class:`GbifUnreachable` at once: retrying would not help a one-shot command (no
    network, or a wrong API URL). Long waits (:func:`gbifxdl.gbif.wait`, a resumed archive
    download) catch it and try again later at their own pace.
    """
    settings = settings or DEFAULT_SETTINGS
    kwargs.setdefault("timeout", (settings.connect_timeout, settings.timeout))
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    host = urlparse(url).netloc
    delay = settings.backoff
    problem = ""
    for attempt in range(settings.retries + 1):
        wait = delay
        try:
            response = requests.request(method, url, auth=auth, headers=headers, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            unreachable = _unreachable_reason(exc)
            if unreachable is not None:
                raise unreachable_error(url, unreachable) from None
            problem = _describe(exc)
        else:
            retryable = response.status_code >= 500 or (retry_429 and response.status_code == 429)
            if not retryable:
                return response
            problem = f"HTTP {response.status_code} {_one_line(response.text, 200)}".strip()
            wait = max(delay, _retry_after(response) or 0.0)
            response.close()
        if attempt < settings.retries:
            log.warning("GBIF at %s: %s; retrying in %.1f s (%d/%d)", host, problem, wait, attempt + 1, settings.retries)
            time.sleep(wait)
            delay = min(delay * 2, settings.max_backoff)
    raise GbifUnavailable(
        f"GBIF at {host} is unavailable after {settings.retries + 1} attempts ({problem}); "
        "check your connection and https://www.gbif.org/health, then run the same command again later"
    )


def check(response: requests.Response, *, what: str, key: str | None = None) -> requests.Response:
    """Return ``response`` if it succeeded, else raise the typed error matching its status."""
    code = response.status_code
    if code < 400:
        return response
    reason = _one_line(response.text) or response.reason or "no reason given"
    subject = f"download {key}" if key else what
    kind, advice = _ADVICE.get(code, (GbifError, "try again later, or report it if it persists"))
    advice = advice.format(subject=subject, key=key or "KEY")  # before GBIF's text joins: it may hold braces
    if code in (400, 413, 422):
        message = f"GBIF rejected the request (HTTP {code}): {reason}; {advice}"
    else:
        message = f"GBIF refused to {what} (HTTP {code}: {reason}); {advice}"
    raise kind(message, status=code, body=response.text)


# HTTP status -> (error, what to do); {subject} and {key} are filled in by check().
_ADVICE: dict[int, tuple[type[GbifError], str]] = {
    401: (AuthenticationError, "check GBIF_USER/GBIF_PWD (the GBIF username, not the e-mail) and that the "
                               "request's creator is that user"),
    403: (AuthenticationError, "only the download's creator may do this"),
    420: (TooManyDownloads, "too many simultaneous downloads: wait for one to finish or cancel one"),
    429: (TooManyDownloads, "too many simultaneous downloads: wait for one to finish or cancel one"),
    400: (PredicateRejected, "fix the predicate and post again"),
    413: (PredicateRejected, "the request is too large: use fewer values (e.g. a higher taxon) and post again"),
    422: (PredicateRejected, "fix the predicate and post again"),
    404: (DownloadNotReady, "GBIF has no {subject} ready: check the key, or wait for it with `gbifxdl wait {key}`"),
    410: (DownloadErased, "GBIF has erased the archive of {subject}: post the same request again for a fresh "
                          "download (the old DOI still cites the data)"),
}
