"""Importing a Beads (`bd`) `issues.jsonl` export as ygg tasks.

`parse` reads lines into issues (pure), `plan` decides what becomes a task and what it waits
for (pure), `importer` runs both and hands the plan to the store in one transaction.
"""

from __future__ import annotations
