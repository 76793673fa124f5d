"""The `ygg` console script. Kept apart from `ygg.cli.parser`, which builds the parser: `ygg
--version` (asked by people and scripts to check an install) answers before argparse and the
command modules are imported."""

import sys


def run() -> None:
    if sys.argv[1:] == ["--version"]:
        from ygg import __version__

        sys.stdout.write(f"ygg {__version__}\n")
        return
    from ygg.cli.parser import main

    main()
