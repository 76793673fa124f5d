"""One pool's slots: take free slots, claim that many tasks, run each attempt, record it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from ygg import logs
from ygg.backends import AttemptFailed, Backend, Job
from ygg.config import PoolConfig
from ygg.dispatch import limits
from ygg.dispatch.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from ygg.dispatch.outcome import Success, log_recorded, record, record_successes
from ygg.dispatch.pool_limit import AdaptiveSlots
from ygg.errors import YggError
from ygg.ops.web.events import pool_event
from ygg.store.base import Store
from ygg.store.model import US, Claim, Outcome
from ygg.store.writer import StoreAbandoned

if TYPE_CHECKING:
    from ygg.dispatch.state import Shared

log = structlog.get_logger("ygg.dispatch")
PROBE_TIMEOUT_S = 5.0
TIMED_OUT = "timed_out"  # an attempt's stop_reason while its timer's cancel is delivered
# The recorded status of an attempt, as the attempt-duration metric's `outcome` label.
_OUTCOME_NAMES = {"done": "done", "queued": "retry", "failed": "failed", None: "stale"}


@dataclass
class Attempt:
    claim: Claim
    task: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.monotonic)
    # Why we cancelled it: cancelled | lease_lost | shutdown | timed_out (until _ask_host sees it)
    stop_reason: str | None = None
    recording: bool = False  # the outcome is being written; the lease keeper leaves it alone
    final: str | None = None  # the status recorded, for the event stream


class PoolRunner:
    def __init__(self, config: PoolConfig, backend: Backend, dispatcher: Shared) -> None:
        self.config = config
        self.backend = backend
        self.d = dispatcher
        self.attempts: dict[int, Attempt] = {}
        self.breaker = Breaker(config.breaker_failures, config.breaker_cooldown_s)
        self.wake = asyncio.Event()
        self.wake.set()
        self.closing = False  # removed by a reload: finish what runs, claim nothing more
        self.task: asyncio.Task[None] | None = None  # the claim loop
        self.adaptive = AdaptiveSlots(config)  # an adaptive pool's controller, else its slots
        # How many to ask for: the store's limit as last heard (dispatch/limits.py), which the
        # store enforces whatever this says; until it is read, what this daemon would set.
        self.limit = self.adaptive.value

    def reconfigure(self, config: PoolConfig) -> None:
        """A reload changed slots, kinds or limits; the backend (resized for new attempts) and
        running attempts stay."""
        self.config = config
        self.backend.reconfigure(config)
        self.breaker.failures_to_open = config.breaker_failures
        self.breaker.cooldown_s = config.breaker_cooldown_s
        self.adaptive.reconfigure(config)
        self.apply_limit(self.adaptive.value)
        self.wake.set()

    def apply_limit(self, limit: int) -> None:
        """The one place a new limit takes effect here: claims from now on stay within it,
        running attempts finish."""
        if limit != self.limit:
            log.info("pool_limit_changed", pool=self.name, limit=limit, was=self.limit,
                     reason=self.adaptive.reason)  # fmt: skip
            self.limit = limit
            self.wake.set()
            if self.d.observer.events.streams:
                self._announce_pool()

    def follow(self, limit: int) -> None:
        """The stored limit changed (a reload anywhere, or adaptive control on any daemon):
        claim up to it; an adaptive pool's controller goes on from there."""
        self.adaptive.adopt(limit)
        self.apply_limit(limit)

    def limit_moved(self) -> None:
        """Our controller moved the limit: it applies here at once, and every daemon on the
        queue follows once the store has it."""
        self.apply_limit(self.adaptive.value)
        self.d.fire(self._share_limit(self.adaptive.value))

    async def _share_limit(self, limit: int) -> None:
        try:
            await limits.change(self.d, self.name, limit)
        except YggError as exc:  # the store waits out transient trouble; this is the rest
            log.error("pool_limit_unshared", pool=self.name, limit=limit, error=exc.message)

    def host_said(self, pressure: str | None) -> None:
        """The host's own report of its load (host telemetry): an adaptive pool backs off."""
        if self.adaptive.host_saturated(pressure):
            self.limit_moved()

    @property
    def name(self) -> str:
        return self.config.name

    async def run(self) -> None:
        """Claims whenever a slot is free and the queue may hold work for it."""
        while not (self.d.stopping or self.closing):
            self.wake.clear()
            running = len(self.attempts)
            free = self.breaker.claim_limit(running, self.limit - running)
            claimed = await self._claim(free) if free > 0 else 0
            if claimed and claimed == free:
                continue  # the queue may hold more
            if not self.attempts:
                self.d.idle_hint.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.d.config.daemon.poll_s):
                    await self.wake.wait()

    async def _claim(self, free: int) -> int:
        d, config = self.d, self.config
        lease_us, now = int(d.config.daemon.lease_s * US), d.now_us()
        kinds, owner = d.kinds_for(self), d.owner  # read here, not on the store thread
        asked_s = time.perf_counter()
        claims = await d.store.call(
            Store.claim,
            config.name,
            kinds,
            free,
            slots=self.limit,
            owner=owner,
            lease_us=lease_us,
            now_us=now,
        )
        metrics = d.observer.metrics
        metrics.claim_observed(config.name, time.perf_counter() - asked_s, len(claims))
        for claim in claims:
            metrics.queue_wait_observed(config.name, claim.kind, (now - claim.created_us) / US)
            attempt = Attempt(claim)
            self.attempts[claim.task_id] = attempt
            attempt.task = asyncio.create_task(self._run(attempt), name=f"task-{claim.task_id}")
        if claims and (events := d.observer.events).streams:
            for claim in claims:
                events.publish_task(claim.task_id, "running", self.name, claim.attempt, claim.kind)
            self._announce_pool()
        return len(claims)

    def _announce_end(self, attempt: Attempt) -> None:
        if (events := self.d.observer.events).streams:
            stopped = "cancelled" if attempt.stop_reason == "cancelled" else None
            events.publish_task(attempt.claim.task_id, attempt.final or stopped, self.name)
            self._announce_pool()

    def _announce_pool(self) -> None:
        self.d.observer.events.publish_pool(self.name, self._pool_state)

    def _pool_state(self) -> dict[str, object]:
        running, breaker = len(self.attempts), self.breaker
        return pool_event(
            self.name, running, self.config.slots, breaker.state, breaker.reason, self.limit
        )

    def stop_attempt(self, task_id: int, reason: str) -> bool:
        attempt = self.attempts.get(task_id)
        if attempt is None or attempt.recording or attempt.task is None:
            return False
        attempt.stop_reason = reason
        attempt.task.cancel()
        return True

    async def _run(self, attempt: Attempt) -> None:
        claim = attempt.claim
        # This asyncio task's own context: every event of the attempt carries these.
        logs.bind_attempt(claim.task_id, self.name, claim.attempt)
        # Per-task lifecycle events are debug: at thousands of tasks/s they would cost more
        # than the work; the queue keeps every start and finish time anyway.
        if logs.DEBUG:
            log.debug("task_started", kind=claim.kind, priority=claim.priority)
        outcome, failure = await self._ask_host(attempt)
        attempt.recording = True
        try:
            if attempt.stop_reason is None:
                await self._record(attempt, outcome, failure)
            else:
                await asyncio.shield(self._record_stop(attempt))
        except StoreAbandoned:
            log.warning("outcome_abandoned")  # a forced stop: the lease returns the task
        except Exception:
            # The store refused even the failure: the row stays `running` without an attempt,
            # so the lease keeper takes it back once its lease runs out (orphan_released).
            log.exception("outcome_write_failed")
        finally:
            self._free(attempt)
            self.d.slot_freed(self)  # now committed: peer daemons may claim the slot too
            self._announce_end(attempt)

    async def _ask_host(self, attempt: Attempt) -> tuple[Outcome | None, AttemptFailed | None]:
        """The backend's answer, or why there is none (None, None: we stopped the attempt)."""
        claim = attempt.claim
        timeout_s = claim.timeout_s or self.config.retry.timeout_s
        job = Job.of(claim, self.d.config.daemon.db, self.d.owner, timeout_s)
        outcome: Outcome | None = None
        failure: AttemptFailed | None = None
        # A timer that cancels the attempt, rather than asyncio.timeout(): that one's own
        # bookkeeping was a twelfth of the daemon's instructions per task, for the same cancel.
        timer = asyncio.get_running_loop().call_later(timeout_s, self._time_out, attempt)
        try:
            outcome = await self.backend.run(job)
        except AttemptFailed as exc:
            failure = exc
        except asyncio.CancelledError:
            if attempt.stop_reason is None:
                raise  # not ours to swallow
        except Exception as exc:  # a backend bug must fail the attempt, not the daemon
            log.exception("backend_crashed")
            failure = AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=True)
        finally:
            timer.cancel()
        if attempt.stop_reason == TIMED_OUT and attempt.task is not None:
            attempt.stop_reason = None
            if attempt.task.uncancel():  # the timer's cancel was ours; another one is not
                raise asyncio.CancelledError
            if outcome is None and failure is None:
                message = f"timed out after {timeout_s:g} s"
                failure = AttemptFailed(message, retryable=True, overloaded=True)
        return outcome, failure

    def _time_out(self, attempt: Attempt) -> None:
        if attempt.stop_reason is None and not attempt.recording and attempt.task is not None:
            attempt.stop_reason = TIMED_OUT
            attempt.task.cancel()

    def _free(self, attempt: Attempt) -> None:
        if self.attempts.pop(attempt.claim.task_id, None) is not None:
            self.wake.set()

    async def _record(
        self,
        attempt: Attempt,
        outcome: Outcome | None,
        failure: AttemptFailed | None,
    ) -> None:
        claim, d = attempt.claim, self.d
        if self.adaptive.learn(outcome, failure, len(self.attempts)):
            self.limit_moved()
        now = d.now_us()
        # Once submitted, the write happens even if a forced stop cancels us while we wait.
        # Successes that finish together are recorded together (one statement on a server).
        if outcome is not None and failure is None:
            success = Success(claim, self.config, outcome, now)
            written = d.store.submit_each(record_successes, success)
        else:
            written = d.store.submit(record, claim, self.config, outcome, failure, now)
        if self.breaker.state == CLOSED and (failure is None or not failure.retryable):
            # The store runs operations in order, so a claim submitted from now on sees this
            # outcome: our next task can start in the same transaction instead of one later.
            # (A host failure waits: the breaker must learn of it before the next claim.)
            self._free(attempt)
        recorded = await written
        attempt.final = recorded.status
        seconds = time.monotonic() - attempt.started
        log_recorded(recorded, failure, now, seconds)
        outcome_name = _OUTCOME_NAMES[recorded.status]
        d.observer.metrics.attempt_finished(self.name, claim.kind, outcome_name, seconds)
        if recorded.status == "done" and outcome is not None:
            d.observer.metrics.usage_observed(self.name, outcome)
        if recorded.status is not None:
            self._breaker_learns(failure)
        if recorded.promoted:
            d.wake_kinds(recorded.promoted)
        if recorded.retry_at_us is not None:
            d.wake_kinds([claim.kind], at_us=recorded.retry_at_us)

    async def _record_stop(self, attempt: Attempt) -> None:
        claim, d = attempt.claim, self.d
        if attempt.stop_reason == "shutdown":
            block = d.config.daemon.on_shutdown == "block"
            now = d.now_us()
            await d.store.call(Store.release, claim.task_id, claim.token, block=block, now_us=now)
            log.info("task_interrupted", on_shutdown=d.config.daemon.on_shutdown)
        elif attempt.stop_reason == "cancelled":
            log.info("task_cancelled")
        else:
            log.warning("lease_lost")
        outcome_name = "interrupted" if attempt.stop_reason == "shutdown" else attempt.stop_reason
        seconds = time.monotonic() - attempt.started
        d.observer.metrics.attempt_finished(self.name, claim.kind, outcome_name or "", seconds)

    # --- the circuit breaker -----------------------------------------------------------------
    def _breaker_learns(self, failure: AttemptFailed | None) -> None:
        # Only the host's own trouble counts: a 4xx or a bad model says the host is up.
        if failure is not None and failure.retryable:
            changed = self.breaker.failed(failure.message, time.monotonic())
        else:
            changed = self.breaker.succeeded()
        if changed:
            self._breaker_changed()

    def _breaker_changed(self) -> None:
        breaker, d = self.breaker, self.d
        event = {CLOSED: log.info, HALF_OPEN: log.info, OPEN: log.warning}[breaker.state]
        event("breaker_" + breaker.state.replace("-", "_"), pool=self.name, reason=breaker.reason)
        owner, state, reason, now = d.owner, breaker.state, breaker.reason, d.now_us()
        d.fire(d.store.call(Store.set_breaker, owner, self.name, state, reason, now))
        if breaker.state == OPEN:
            d.fire(self._probe_when_cooled())
        self._announce_pool()
        d.wake_all()  # fallback pools gain or lose this pool's kinds; a trial may start

    async def _probe_when_cooled(self) -> None:
        while self.breaker.state == OPEN and not (self.d.stopping or self.closing):
            await asyncio.sleep(max(self.breaker.probe_due_at_s() - time.monotonic(), 0.0))
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    healthy = await self.backend.health()
            except Exception:  # any error of the probe means the host is not back
                healthy = False
            log.info("breaker_probed", pool=self.name, healthy=healthy)
            if self.breaker.probed(healthy, time.monotonic()):
                self._breaker_changed()
