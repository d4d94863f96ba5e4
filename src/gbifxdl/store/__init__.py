"""Where a dataset's files go: a local folder, or an fsspec URL (S3, GCS, SFTP, ...).

``open_store(target)`` gives a :class:`Store`: whole objects addressed by ``/``-separated
keys relative to the target. Every put is atomic: an object appears under its final key
only when complete, and a concurrent reader sees the old object, the new one, or none,
never a part. How, per back end:

- a local path (or ``file://``): write a temporary name beside the final path, then
  ``os.replace`` (plain ``os`` calls; fsspec is never imported);
- S3 and GCS: upload straight to the final key; the object exists only once the upload
  (single PUT, or multipart upload, or resumable upload) completes, and an interrupted
  multipart upload never becomes an object;
- SFTP and any other filesystem: upload to a temporary name beside it, then rename
  (SFTP's ``posix-rename``, which replaces the target in one step).

The commands after fetch work on a store URL through a local *working copy* of the dataset
(:func:`working_copy`, in ``_working.py``): pulled from the store before, pushed back after.

There is no append: a journal on an object store is written as whole objects (e.g. one per
finished unit), so any machine that can read the store can resume from it.

Temporary names contain ``.tmp-``; listings never show them and
:meth:`Store.remove_temporaries` deletes those a killed process left. Credentials are read
only from each filesystem's usual places (AWS variables, profiles and ``AWS_ENDPOINT_URL``;
Google application credentials; the SSH agent, ``~/.ssh`` keys and ``known_hosts``); a
password in the URL is refused, and nothing here shows one.
"""

from __future__ import annotations

from gbifxdl.store._base import TEMP_MARK, Store, check_key, is_temporary, redact_url, temp_name
from gbifxdl.store._local import LocalStore
from gbifxdl.store._open import is_url, local_target, open_store
from gbifxdl.store._working import WorkingCopy, cache_folder, cache_root, location_of, working_copy
from gbifxdl.errors import StorageError

__all__ = ["Store", "LocalStore", "open_store", "local_target", "redact_url", "is_temporary", "check_key", "temp_name",
           "TEMP_MARK", "StorageError", "WorkingCopy", "working_copy", "location_of", "cache_root", "cache_folder", "is_url"]
