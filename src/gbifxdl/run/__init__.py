"""The whole job, from a GBIF query to a curated dataset, as one resumable run (``gbifxdl run``).

- :mod:`~gbifxdl.run._job`      :func:`run`, its settings (:class:`RunSettings` and the sections) and
  its state in ``DIR/.gbifxdl/run.json``: which stages are done, the download key
- :mod:`~gbifxdl.run._stages`   one function per step (request, wait, get, select, fetch, infer,
  curate, report), each calling that stage's public API
- :mod:`~gbifxdl.run._models`   the ``[[models]]`` steps (:class:`ModelStep`) the infer step runs, and
  what decides their results (the files' sha256)
- :mod:`~gbifxdl.run._changes`  what a change of settings redoes, and which settings change no output
- :mod:`~gbifxdl.run.config`    the configuration file (``gbifxdl init``, ``run --config``): reading,
  checking, and merging it with the command line's options
"""

from __future__ import annotations

from gbifxdl.run._changes import STAGES
from gbifxdl.run._job import STATE_FILE, RunSettings, RunState, SourceSettings, WaitSettings, run
from gbifxdl.run._models import ModelStep

__all__ = ["STAGES", "STATE_FILE", "ModelStep", "RunSettings", "RunState", "SourceSettings", "WaitSettings", "run"]
