"""Error types the engine raises for problems the user can fix.

A ``UserError`` is shown to the user as its one-line message (no traceback) and the headless CLI
exits with code 2. Anything else escaping the engine is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (file, config value, flag): shown as one line, exit code 2."""


class ConfigError(UserError):
    """A bad configuration file, key or value; the message names the key path and the source."""


class DataError(UserError):
    """A problem in a data file; the message starts with ``path:line: ...``."""


class DiskFullError(UserError):
    """The disk under the workspace (or an output folder) is full; the message names the path."""

