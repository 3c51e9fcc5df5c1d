"""Widgets of the TUI."""

from .timeline import Timeline

__all__ = ["Timeline"]
