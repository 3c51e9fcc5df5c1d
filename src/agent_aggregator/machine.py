"""Which machine an event comes from: ``$CLAUDE_MPM_AGGREGATOR_HOSTNAME``, else the system's hostname.

Across machines (issue 10) every session is tagged with the machine it was
captured on (``metadata.hostname``). The override exists so one machine can
stand in for several (tests, containers that all share one hostname); it is an
environment variable only, because ``aggregate hook`` never reads YAML.
Stdlib only and cheap: the hook reads the same variable itself.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_VARIABLE = "CLAUDE_MPM_AGGREGATOR_HOSTNAME"


def hostname(environ: "os._Environ[str] | dict[str, str] | None" = None) -> str:
    """The name this machine's events are tagged with (never empty)."""
    override = (os.environ if environ is None else environ).get(HOSTNAME_VARIABLE, "").strip()
    return override or socket.gethostname() or "localhost"
