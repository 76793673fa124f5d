"""The one small interface every backend implements, and how an attempt can fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ygg.config import PoolConfig
from ygg.errors import YggError
from ygg.store.model import Claim, Outcome

MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # an answer larger than this is a broken host, not a result


@dataclass(frozen=True)
class Job:
    """What a backend is told about one attempt."""

    task_id: int
    attempt: int
    kind: str
    priority: int
    title: str
    prompt: str
    params: dict[str, Any] = field(default_factory=dict)
    queue: str = ""  # the queue's database and the daemon's id in it: together they name
    owner: int = 0  # every process an attempt starts, so a dead daemon's leftovers are found
    timeout_s: float | None = None  # this attempt's (the task's, else the pool's); None: pool's

    @classmethod
    def of(
        cls, claim: Claim, queue: str = "", owner: int = 0, timeout_s: float | None = None
    ) -> Job:
        return cls(
            claim.task_id,
            claim.attempt,
            claim.kind,
            claim.priority,
            claim.title,
            claim.prompt,
            claim.params,
            queue,
            owner,
            timeout_s,
        )


class AttemptFailed(YggError):
    """The attempt failed.

    `retryable`: worth another attempt (connection trouble, timeouts, 5xx, 429). `unreachable`:
    the host was never reached, so the attempt is not charged. `retry_after_s`: the host asked
    us to wait at least this long. `overloaded`: the host said it has too much to do (429,
    503, a timeout): adaptive slots back off.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        unreachable: bool = False,
        retry_after_s: float | None = None,
        overloaded: bool = False,
    ) -> None:
        super().__init__(message)
        self.overloaded = overloaded
        self.retryable = retryable or unreachable
        self.unreachable = unreachable
        self.retry_after_s = retry_after_s


class Backend(Protocol):
    pool: PoolConfig

    async def run(self, job: Job) -> Outcome:
        """Runs one attempt; raises AttemptFailed. Cancellation must stop the work at once."""
        ...

    async def health(self) -> bool:
        """Whether the host answers its health endpoint."""
        ...

    def reconfigure(self, pool: PoolConfig) -> None:
        """A reload kept this backend (same host) with new settings: attempts started from now
        on use them; attempts running now finish as they are."""
        ...

    async def aclose(self) -> None: ...
