from __future__ import annotations

from ygg.cli import main

main()
