"""The TUI's screens: ``live`` (the panes), ``browser``, ``detail``, ``category``, ``help``."""
