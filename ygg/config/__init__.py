"""Configuration: the settings (`settings`), the files they come from and `ygg config set`
(`files`), API keys (`credentials`) and the example `ygg init` writes (`examples`)."""

from __future__ import annotations

from ygg.config.settings import (
    BACKENDS,
    Config,
    DaemonConfig,
    PoolConfig,
    RetryPolicy,
    load,
    validate,
)

__all__ = ["BACKENDS", "Config", "DaemonConfig", "PoolConfig", "RetryPolicy", "load", "validate"]
