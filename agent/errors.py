"""Errors the agent's public API raises for the user to read (front ends print the message; agent/cli/errors.py
maps them to exit codes)."""

from __future__ import annotations


class SessionCommandError(Exception):
    """A session command (undo, a memory command) that could not be done; the message is for the user."""
