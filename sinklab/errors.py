"""Errors the user can act on: the CLI prints their message and exits 2, without a traceback.

Anything else that escapes a command is a bug and keeps its traceback. Configuration validation raises
ValueError (the config dataclasses' convention), which the CLI treats the same way.
"""

from __future__ import annotations


class SinklabError(Exception):
    """Bad input or an unusable file/environment; the message says what was wrong and what is accepted."""


class UnknownNameError(SinklabError, KeyError):
    """A name that is not in a registry (a KeyError too, so mapping-style callers keep working)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""
