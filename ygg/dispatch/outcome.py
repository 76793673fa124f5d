"""Recording how an attempt ended: one store operation shared by the async and legacy modes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import structlog

from ygg import logs
from ygg.backends import AttemptFailed
from ygg.config import PoolConfig
from ygg.dispatch.retry import backoff_s
from ygg.errors import StoreUnavailable
from ygg.store.completion import Completion
from ygg.store.model import US, Claim, Outcome

if TYPE_CHECKING:
    from ygg.store.base import Store


log = structlog.get_logger("ygg.dispatch")
# The named error of an attempt whose answer could not be written.
OUTCOME_NOT_STORED = "OutcomeNotStored: the host's answer could not be stored"


@dataclass(frozen=True)
class Recorded:
    status: str | None  # None: our lease was gone, the outcome was discarded
    promoted: list[str] = field(default_factory=list)  # kinds of dependents now queued
    retry_at_us: int | None = None


def record(
    store: Store,
    claim: Claim,
    pool: PoolConfig,
    outcome: Outcome | None,
    failure: AttemptFailed | None,
    now_us: int,
) -> Recorded:
    """Writes the outcome under the claim's fencing token (runs on the store's thread).

    Whatever the backend returned, the attempt ends in a recorded outcome: an answer the store
    still refuses (after storable() has cleaned it) fails the attempt as OutcomeNotStored.
    Transient store trouble is not caught here: the caller waits it out and tries again."""
    if outcome is not None:
        try:
            promoted = store.complete(claim.task_id, claim.token, outcome, now_us)
        except StoreUnavailable:
            raise
        except Exception as exc:  # any refusal of this answer ends the attempt
            log.error("outcome_not_stored", error=repr(exc))
            failure = AttemptFailed(f"{OUTCOME_NOT_STORED}: {exc!r}", retryable=True)
        else:
            return Recorded(None) if promoted is None else Recorded("done", promoted)
    assert failure is not None
    retry_at = None
    if failure.retryable:
        delay_s = backoff_s(claim.attempt, pool.retry, failure.retry_after_s)
        retry_at = now_us + int(delay_s * US)
    status = store.fail(
        claim.task_id,
        claim.token,
        failure.message,
        retry_at_us=retry_at,
        charge=not failure.unreachable,
        now_us=now_us,
    )
    return Recorded(status, retry_at_us=retry_at if status == "queued" else None)


class Success(NamedTuple):
    """An attempt that answered, for record_successes."""

    claim: Claim
    pool: PoolConfig
    outcome: Outcome
    now_us: int


def record_successes(store: Store, items: list[Success]) -> list[Recorded]:
    """record() for attempts that answered, several in one store call (runs on the store's
    thread, through StoreThread.submit_each). Should the store refuse one of the answers,
    each is recorded on its own, as record() does."""
    if len(items) > 1:
        try:
            answers = store.complete_many(
                [Completion(s.claim.task_id, s.claim.token, s.outcome, s.now_us) for s in items]
            )
        except StoreUnavailable:
            raise
        except Exception:  # which answer was refused is record()'s to find out
            log.warning("outcomes_recorded_one_by_one")
        else:
            return [Recorded(None) if a is None else Recorded("done", a) for a in answers]
    return [record(store, s.claim, s.pool, s.outcome, None, s.now_us) for s in items]


def log_recorded(
    recorded: Recorded,
    failure: AttemptFailed | None,
    now_us: int,
    seconds: float,
) -> None:
    if recorded.status is None:
        log.warning("stale_result_discarded")
    elif recorded.status == "done":
        if logs.DEBUG:
            log.debug("task_done", seconds=round(seconds, 6))
    elif recorded.status == "queued" and recorded.retry_at_us is not None:
        log.warning(
            "task_retry_scheduled",
            error=failure.message if failure else None,
            retry_in_s=round((recorded.retry_at_us - now_us) / US, 3),
        )
    else:
        log.error("task_failed", error=failure.message if failure else None)
