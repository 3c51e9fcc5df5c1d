"""The ``aggregate`` console script and ``python -m agent_aggregator``.

Claude Code runs ``aggregate hook`` for every hook event, so the hook is handed
over here before the command line (argparse, pathlib, typing, our commands:
~15 ms) is imported at all; every other command goes to ``cli.main``.
"""

import sys


def main() -> int:
    arguments = sys.argv[1:]
    if arguments[:1] == ["hook"]:
        from .hook import main as hook_main

        return hook_main(arguments[1:], exit_process=True)
    from .cli import main as cli_main

    return cli_main(arguments)
