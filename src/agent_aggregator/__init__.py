"""agent-aggregator: capture, store and browse the live activity of AI coding agents."""

__version__ = "0.1.0"
