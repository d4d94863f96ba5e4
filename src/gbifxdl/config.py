"""The run's configuration file: now :mod:`gbifxdl.run.config`; this name is the same module, for
code that imported it here."""

import sys

from gbifxdl.run import config as _config

sys.modules[__name__] = _config
