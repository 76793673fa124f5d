"""The async dispatcher in this process against a real SQLite file and sim/command hosts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import uvloop

from tests.conftest import MakeConfig
from ygg import api
from ygg.backends import Job
from ygg.backends.sim import SimBackend
from ygg.config import Config
from ygg.dispatch.dispatcher import Dispatcher
from ygg.store import Outcome, Store, Task, open_store

SIM_ONE_SLOT = """
[pools.solo]
backend = "sim"
seconds = 0.0
slots = 1
kinds = ["general", "code"]
"""


def submit(store: Store, config: Config, title: str, **fields: object) -> Task:
    return api.submit(store, api.new_task(config, title=title, **fields))  # type: ignore[arg-type]


def run_until_idle(config: Config, timeout_s: float = 20.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(timeout_s):
            await Dispatcher(config, until_idle=True).run()

    uvloop.run(main())


def test_strict_priority_then_fifo(make_config: MakeConfig) -> None:
    config = make_config(SIM_ONE_SLOT)
    store = open_store(config.daemon.db)
    plan = [3, 0, 4, 1, 0, 2, 1, 3, 0]
    ids = [
        submit(store, config, f"t{i}", kind="general", priority=p).id for i, p in enumerate(plan)
    ]
    run_until_idle(config)
    tasks = [store.get(i) for i in ids]
    assert all(t.status == "done" for t in tasks)
    started = sorted(tasks, key=lambda t: t.started_us or 0)
    assert [(t.priority, t.id) for t in started] == sorted((t.priority, t.id) for t in tasks)


def test_dependencies_promote_and_block(make_config: MakeConfig) -> None:
    config = make_config(SIM_ONE_SLOT.replace("slots = 1", "slots = 4"))
    store = open_store(config.daemon.db)
    first = submit(store, config, "first", kind="general")
    second = submit(store, config, "second", kind="code", depends_on=[first.id])
    both = submit(store, config, "both", kind="general", depends_on=[first.id, second.id])
    broken = submit(
        store, config, "broken", kind="general", params={"fail": "true"}, max_attempts=1
    )
    after_broken = submit(store, config, "after broken", kind="general", depends_on=[broken.id])
    chained = submit(store, config, "chained", kind="general", depends_on=[after_broken.id])
    assert (second.status, both.status) == ("waiting", "waiting")
    run_until_idle(config)
    done = [store.get(t.id) for t in (first, second, both)]
    assert [t.status for t in done] == ["done", "done", "done"]
    assert done[0].finished_us <= done[1].started_us <= done[1].finished_us <= done[2].started_us  # type: ignore[operator]
    assert store.get(broken.id).status == "failed"
    assert [store.get(t.id).status for t in (after_broken, chained)] == ["blocked", "blocked"]
    store.retry(broken.id, 0)
    assert [store.get(t.id).status for t in (after_broken, chained)] == ["waiting", "waiting"]


def test_retryable_failure_uses_every_attempt_then_fails(make_config: MakeConfig) -> None:
    config = make_config(SIM_ONE_SLOT, defaults="backoff_seconds = 0.01")
    store = open_store(config.daemon.db)
    task = submit(store, config, "flaky", kind="general", params={"fail": "true"}, max_attempts=3)
    run_until_idle(config)
    final = store.get(task.id)
    assert (final.status, final.attempts) == ("failed", 3)
    assert "simulated failure" in (final.error or "")


def test_timeout_fails_the_attempt(make_config: MakeConfig) -> None:
    config = make_config(SIM_ONE_SLOT)
    store = open_store(config.daemon.db)
    task = submit(
        store,
        config,
        "slow",
        kind="general",
        params={"seconds": "5"},
        max_attempts=1,
        timeout_s=0.2,
    )
    run_until_idle(config)
    final = store.get(task.id)
    assert final.status == "failed"
    assert "timed out after 0.2 s" in (final.error or "")


class SlowFirstAttempt(SimBackend):
    """A host that hangs on a task's first attempt and answers the next at once; or, with
    `swallow`, answers the first one late, when its timeout cancels it."""

    swallow = False

    async def run(self, job: Job) -> Outcome:
        if job.attempt == 1:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if not self.swallow:
                    raise
                return Outcome("answered when cancelled")
        return Outcome(f"attempt {job.attempt}")


def run_with_backend(
    config: Config, backend: type[SimBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ygg.dispatch.dispatcher.make_backend", backend)
    run_until_idle(config)


class AnswersWhenCancelled(SlowFirstAttempt):
    swallow = True


def test_timed_out_attempt_is_retried_and_the_next_one_runs_whole(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(SIM_ONE_SLOT, defaults="backoff_seconds = 0.01")
    store = open_store(config.daemon.db)
    task = submit(store, config, "slow once", kind="general", max_attempts=2, timeout_s=0.2)
    run_with_backend(config, SlowFirstAttempt, monkeypatch)
    final = store.get(task.id)
    assert (final.status, final.attempts, final.result) == ("done", 2, "attempt 2")


def test_a_host_that_answers_its_timeout_is_recorded_as_answered(
    make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with asyncio.timeout(): a backend that catches the cancel and answers keeps its answer.
    config = make_config(SIM_ONE_SLOT)
    store = open_store(config.daemon.db)
    task = submit(store, config, "answers late", kind="general", max_attempts=1, timeout_s=0.2)
    run_with_backend(config, AnswersWhenCancelled, monkeypatch)
    final = store.get(task.id)
    assert (final.status, final.result) == ("done", "answered when cancelled")


def test_slots_bound_concurrency_in_one_daemon(make_config: MakeConfig, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    pools = f"""
[pools.cmd]
backend = "command"
argv = ["{sys.executable}", "{Path(__file__).parent.parent / "support" / "cmd_host.py"}", "{log}"]
slots = 3
kinds = ["general"]
"""
    config = make_config(pools)
    store = open_store(config.daemon.db)
    for i in range(9):
        submit(store, config, f"t{i}", kind="general", params={"seconds": "0.3"})
    run_until_idle(config)
    from tests.support.cmdlog import max_overlap, read_cmd_log

    runs = read_cmd_log(log)
    assert len(runs) == 9
    assert max_overlap(runs) == 3
    assert all(t.status == "done" for t in store.list_tasks())


@pytest.mark.parametrize("legacy", [False, True], ids=["async", "legacy"])
def test_command_result_env_and_stdin(
    make_config: MakeConfig, tmp_path: Path, legacy: bool
) -> None:
    script = tmp_path / "echo.py"
    script.write_text(
        "import os, sys\n"
        "data = sys.stdin.buffer.read()\n"
        "keys = ['YGG_TASK_ID', 'YGG_ATTEMPT', 'YGG_POOL', 'YGG_KIND', 'YGG_PRIORITY',\n"
        "        'YGG_PARAM_LANG']\n"
        "sys.stdout.write(' '.join(os.environ[k] for k in keys) + '|' + data.decode())\n"
    )
    config = make_config(f"""
[pools.cmd]
backend = "command"
argv = ["{sys.executable}", "{script}"]
slots = 1
kinds = ["general"]
""")
    store = open_store(config.daemon.db)
    task = submit(
        store,
        config,
        "env",
        kind="general",
        priority=1,
        prompt="héllo\nworld",
        params={"lang": "py"},
    )
    if legacy:
        from ygg.dispatch.legacy import LegacyDispatcher

        LegacyDispatcher(config, until_idle=True).run()
    else:
        run_until_idle(config)
    final = store.get(task.id)
    assert final.status == "done"
    assert final.result == f"{task.id} 1 cmd general 1 py|héllo\nworld"


def test_a_runtime_limit_change_is_stored_and_followed(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    """What adaptive control will do: lower a pool's limit while it runs. The store keeps the
    configured slots as the ceiling, the pool follows at once: no task whose claim began after
    the change runs while more than the new limit run (judged by the command's own log)."""
    from tests.support.cmdlog import read_cmd_log
    from ygg.dispatch import limits
    from ygg.store.model import now_us

    log = tmp_path / "runs.log"
    host = Path(__file__).parent.parent / "support" / "cmd_host.py"
    pools = f"""
[pools.cmd]
backend = "command"
argv = ["{sys.executable}", "{host}", "{log}"]
slots = 3
kinds = ["general"]
"""
    config = make_config(pools)
    store = open_store(config.daemon.db)
    for i in range(9):
        submit(store, config, f"t{i}", kind="general", params={"seconds": "0.3"})

    async def main() -> float:
        dispatcher = Dispatcher(config, until_idle=True)
        running = asyncio.create_task(dispatcher.run())
        async with asyncio.timeout(20):
            while store.counts().get("running", 0) < 3:
                await asyncio.sleep(0.01)
            stored = await limits.change(dispatcher, "cmd", 1)
            changed_s = now_us() / 1e6
            assert (stored.limit, stored.configured, stored.source) == (1, 3, "adaptive")
            assert dispatcher.runners["cmd"].limit == 1
            await running
        return changed_s

    changed_s = uvloop.run(main())
    runs = read_cmd_log(log)
    started = {str(t.id): (t.started_us or 0) / 1e6 for t in store.list_tasks()}
    later = [r for r in runs if started[r.task] > changed_s]
    assert len(later) >= 4
    ends = {id(r): r.end or float("inf") for r in runs}
    worst = max(sum(1 for o in runs if o.start <= r.start < ends[id(o)]) for r in later)
    assert worst == 1
    assert store.pool_limits()["cmd"].limit == 1
