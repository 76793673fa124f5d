"""The one exception root. Every error a user can see is a YggError whose text is the message.

Only the CLI turns these into exit statuses; library code raises and never exits.
"""

from __future__ import annotations

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_DATA = 65  # EX_DATAERR: the database file is not one this ygg can use
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h; systemd units use it in RestartPreventExitStatus


class YggError(Exception):
    """ygg failed."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or type(self).__name__)

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(YggError):
    """The configuration is invalid."""

    exit_code = EXIT_CONFIG


class InvalidInput(YggError):
    """The input is invalid."""

    exit_code = EXIT_USAGE


class TaskNotFound(InvalidInput):
    """No such task."""


class BatchItemError(InvalidInput):
    """One task of a batch was refused; nothing of the batch was stored."""

    def __init__(self, index: int, error: InvalidInput) -> None:
        super().__init__(error.message)
        self.index = index  # its position in the batch, from 0


class StoreError(YggError):
    """The task store failed."""


class QueueNotFound(StoreError):
    """The queue named on the command line cannot exist where it points."""

    exit_code = EXIT_USAGE


class StoreUnavailable(StoreError):
    """The store cannot take a write for now (locked, disk full, connection lost): a transient
    condition that callers wait out and retry, whatever the engine."""


class StoreBusy(StoreUnavailable):
    """The database stayed locked by another process for too long."""


class StoreConflict(StoreBusy):
    """Two transactions collided (a deadlock, a serialization failure) and this one was
    rolled back; running the operation again is safe."""


class StoreConnectionLost(StoreUnavailable):
    """The connection to a database server was lost (a restart, a terminated backend, the
    network); the next operation connects again."""


class BatchUndone(StoreError):
    """An operation of a batch run without savepoints failed, so the whole batch was rolled
    back; running it again with a savepoint per operation is safe (nothing of it was kept)."""


class StoreRefused(StoreError):
    """The database file is not one this ygg can use; it was left untouched."""

    exit_code = EXIT_DATA


class StoreFull(StoreUnavailable):
    """The disk holding the database is full."""
