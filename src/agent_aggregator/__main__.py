"""``python -m agent_aggregator`` is ``aggregate``."""

from .entry import main

if __name__ == "__main__":
    raise SystemExit(main())
