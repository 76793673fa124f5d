"""The benchmark scenarios: lists of simulated tasks with their durations in simulated seconds.

Every scenario runs on the original deployment's three pools (`ygg init --demo`): surtr-reasoning
(2 slots: reasoning, general), fenrir-chat (3 slots: text-processing, summarize, text-extraction)
and skadi-code (2 slots: code-generation, code-refactor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ygg.errors import InvalidInput

DEFAULT_THROUGHPUT_TASKS = 2000


@dataclass(frozen=True)
class Job:
    """One task of a scenario; `seconds` is its simulated duration."""

    title: str
    kind: str
    priority: int
    seconds: float


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    jobs: tuple[Job, ...]
    throughput: bool = False  # report tasks/s rather than makespans against a lower bound


# The seed's "6 ready tasks". Its legacy timeline fixes the durations it mentions:
#   - the code agent finishes code generation at t=45 s                  -> code generation 45 s
#   - the text agent finishes summarization at t=85 s                    -> summarization 85 s
#   - text extraction follows it, and everything is done at t=130 s      -> text extraction 45 s
# It gives no times for the rest; code refactor, reasoning and general take 45 s like the
# other tasks (the code and reasoning agents are then done at t=90 s, inside the 130 s).
# Legacy: fenrir runs 85 + 45 = 130 s, the seed's total. Async: all six start at once and the
# makespan is the longest task, 85 s (the seed says "~90 s").
SIX = Scenario(
    "six",
    "the seed's six ready tasks (code 45 s, summarization 85 s, extraction 45 s, others 45 s)",
    (
        Job("Code generation (complex model)", "code-generation", 0, 45.0),
        Job("Text summarization", "summarize", 0, 85.0),
        Job("Reasoning analysis", "reasoning", 1, 45.0),
        Job("Text extraction", "text-extraction", 2, 45.0),
        Job("Code refactor", "code-refactor", 2, 45.0),
        Job("General task", "general", 3, 45.0),
    ),
)

# The seed's synthetic benchmark: legacy 20 x 10 s per pool = 200 s; async max(100, 70) = 100 s.
TWENTY_TWENTY = Scenario(
    "twenty-twenty",
    "20 code-generation + 20 summarize tasks of 10 s",
    tuple(
        job
        for i in range(20)
        for job in (
            Job(f"Code task {i + 1}", "code-generation", 2, 10.0),
            Job(f"Text task {i + 1}", "summarize", 2, 10.0),
        )
    ),
)

# Legacy: reasoning alone is 10 x 40 = 400 s; async: 5 waves of 40 s on surtr's 2 slots = 200 s.
MIXED_THIRTY = Scenario(
    "mixed-thirty",
    "10 code tasks of 30 s, 10 text tasks of 20 s, 10 reasoning tasks of 40 s",
    tuple(
        job
        for i in range(10)
        for job in (
            Job(f"Code task {i + 1}", "code-generation", 2, 30.0),
            Job(f"Text task {i + 1}", "text-processing", 2, 20.0),
            Job(f"Reasoning task {i + 1}", "reasoning", 2, 40.0),
        )
    ),
)

THROUGHPUT_KINDS = ("code-generation", "summarize", "reasoning")  # one per pool, round robin


def throughput(tasks: int = DEFAULT_THROUGHPUT_TASKS) -> Scenario:
    """`tasks` zero-second tasks spread evenly over the three pools: dispatch overhead only."""
    return Scenario(
        "throughput",
        f"{tasks} tasks of 0 s over the three pools",
        tuple(
            Job(f"Throughput task {i + 1}", THROUGHPUT_KINDS[i % 3], 2, 0.0) for i in range(tasks)
        ),
        throughput=True,
    )


NAMES = ("six", "twenty-twenty", "mixed-thirty", "throughput")


def scenarios(names: Sequence[str], *, tasks: int = DEFAULT_THROUGHPUT_TASKS) -> list[Scenario]:
    """The scenarios named (all of them if none), in the order given, each once."""
    if tasks < 1:
        raise InvalidInput(f"--tasks must be at least 1, not {tasks}.")
    fixed = {s.name: s for s in (SIX, TWENTY_TWENTY, MIXED_THIRTY)}
    chosen: list[Scenario] = []
    for name in dict.fromkeys(names or NAMES):
        if name == "throughput":
            chosen.append(throughput(tasks))
        elif name in fixed:
            chosen.append(fixed[name])
        else:
            raise InvalidInput(f"Unknown scenario {name!r}; the scenarios are: {', '.join(NAMES)}.")
    return chosen
