"""ygg: a dispatcher daemon that keeps a few GPU boxes busy with prioritized LLM jobs."""

from __future__ import annotations

__version__ = "0.1.0"
