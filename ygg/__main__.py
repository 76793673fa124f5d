from __future__ import annotations

from ygg.cli.parser import main

main()
