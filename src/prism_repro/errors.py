"""Errors the user can fix: printed as one line (exit status 1), never as a traceback."""

from __future__ import annotations

__all__ = ["UserError", "ConfigError"]


class UserError(Exception):
    """A problem with the user's input (a file, an option): one line, exit status 1."""


class ConfigError(UserError, ValueError):
    """A config problem, stated in one line that names the key."""
