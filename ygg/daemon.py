"""Process lifecycle: the event loop, signals, and the phased stop.

Signal handlers only set state. The first SIGTERM/SIGINT stops claiming and drains; a second
one stops the running attempts at once (their tasks are released or, failing that, recovered
by lease expiry), so every task stays recoverable either way.
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
from collections.abc import Callable

import structlog
import uvloop

from ygg.config import Config
from ygg.dispatch.dispatcher import Dispatcher
from ygg.errors import YggError

log = structlog.get_logger("ygg.daemon")


class DaemonCrashed(YggError):
    """A part of the daemon died unexpectedly."""


async def _serve(
    config: Config, until_idle: bool, reload_config: Callable[[], Config] | None
) -> None:
    dispatcher = Dispatcher(config, until_idle=until_idle, reload_config=reload_config)
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_stop_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        if signals_seen == 1:
            log.info("stop_requested", signal=name)
            dispatcher.request_stop()
        else:
            log.warning("forced_stop_requested", signal=name)
            dispatcher.force_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, dispatcher.request_reload)
    try:
        await dispatcher.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    if isinstance(dispatcher.crashed, YggError):
        raise dispatcher.crashed  # already one clear sentence, with its own exit status
    if dispatcher.crashed is not None:
        raise DaemonCrashed(
            f"The dispatcher stopped after an internal error: {dispatcher.crashed!r}."
        )


def run_daemon(
    config: Config,
    *,
    until_idle: bool = False,
    reload_config: Callable[[], Config] | None = None,
) -> None:
    """Runs the async dispatcher until it is stopped (or idle, with until_idle); SIGHUP
    applies `reload_config()`."""
    # systemd's watchdog ends a stuck daemon with SIGABRT: this puts every thread's stack in
    # the journal, which is what one needs to know why it was stuck.
    faulthandler.enable()
    uvloop.run(_serve(config, until_idle, reload_config))


def run_legacy(
    config: Config,
    *,
    until_idle: bool = False,
    reload_config: Callable[[], Config] | None = None,
) -> None:
    """Runs the legacy dispatcher (`ygg loop --legacy`) until it is stopped; the same signals
    as the async mode: a second SIGTERM/SIGINT cuts the drain short, SIGHUP reloads."""
    from ygg.dispatch.legacy import LegacyDispatcher  # the async mode never loads it

    legacy = LegacyDispatcher(config, until_idle=until_idle, reload_config=reload_config)
    seen = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal seen
        seen += 1
        if seen > 1:
            legacy.forced.set()
        legacy.request_stop()

    def on_hangup(_signum: int, _frame: object) -> None:
        legacy.reload_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    try:
        legacy.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
