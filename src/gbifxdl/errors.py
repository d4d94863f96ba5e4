"""The exceptions gbifxdl raises: one tree under :class:`GbifxdlError`.

Every message says what went wrong and what to do next; the command line prints it
as one line and exits non-zero (a traceback only with ``--debug``). Stage modules may
define narrower subclasses of these.
"""

from __future__ import annotations


class GbifxdlError(Exception):
    """Base class of every error gbifxdl raises on purpose."""

    exit_code: int = 1


class ConfigError(GbifxdlError):
    """An option, setting or configuration file is invalid."""

    exit_code = 2


class CredentialsError(ConfigError):
    """No GBIF credentials could be found, or they are incomplete."""


class PredicateError(ConfigError):
    """A predicate is malformed; the message names the offending part by its JSON path."""


# --- GBIF API -------------------------------------------------------------------------


class GbifError(GbifxdlError):
    """GBIF answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body


class AuthenticationError(GbifError):
    """GBIF refused the username or password (HTTP 401)."""


class TooManyDownloads(GbifError):
    """The account already runs as many downloads as GBIF allows (HTTP 420 or 429)."""


class PredicateRejected(GbifError):
    """GBIF refused the request as invalid or too large (HTTP 400 or 413)."""


class DownloadNotReady(GbifError):
    """The download is unknown or its archive is not ready yet (HTTP 404)."""


class DownloadErased(GbifError):
    """The download's archive has been erased by GBIF (HTTP 410 or FILE_ERASED)."""


class DownloadFailed(GbifError):
    """The download ended as FAILED, KILLED or CANCELLED."""


class GbifUnavailable(GbifError):
    """GBIF kept answering 5xx, or the connection failed, after every retry."""


class WaitTimeout(GbifError):
    """Waiting for a download took longer than the configured limit."""


# --- Archive and selection --------------------------------------------------------------


class ArchiveError(GbifxdlError):
    """A download archive cannot be read: not a zip, truncated, or malformed."""


class NoMediaError(ArchiveError):
    """The archive carries no media URLs (a SIMPLE_* format, or no multimedia extension)."""


class SelectionError(GbifxdlError):
    """The selection stage could not produce its table."""


# --- Fetch, curate, run -------------------------------------------------------------------


class FetchError(GbifxdlError):
    """The fetch stage could not run (bad input table, output folder in use, ...)."""


class CurateError(GbifxdlError):
    """The curation stage could not run (missing metadata, layout not recognised, ...)."""


class StateError(GbifxdlError):
    """A dataset folder's saved state conflicts with what was asked (e.g. other settings)."""


class StorageError(GbifxdlError):
    """An output store (folder, bucket, SFTP server) cannot be reached, read or written.

    The message names the target (never with a password) and what to do, e.g. which extra
    to install or which credentials to set.
    """
