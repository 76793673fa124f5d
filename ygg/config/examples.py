"""The example configuration `ygg init` writes (config/ygg.toml is the same text)."""

from __future__ import annotations

_HEADER = """\
# ygg configuration: the original deployment, three GPU hosts.
# Found via --config, $YGG_CONFIG, ./ygg.toml or /etc/ygg/ygg.toml; files in ygg.d/*.toml
# beside it are merged over it in name order (`ygg config set` writes ygg.d/50-local.toml).

[daemon]
db = "ygg.db"                 # SQLite file, relative to this file
lease_seconds = 30            # a running task's lease; renewed while it runs
drain_seconds = 60            # on SIGTERM: how long in-flight tasks may finish
on_shutdown = "requeue"       # tasks still running after the drain: requeue | block
status_listen = "127.0.0.1:9464"
# log_format = "json"         # console | json; default: JSON unless on a terminal
# log_level = "info"          # debug adds an event for every task started and finished

[defaults]                    # per-task defaults, overridable per pool and per task
max_attempts = 3
timeout = 600                 # seconds a single attempt may run
"""

# (name, host, model, slots, kinds, seconds a simulated task takes)
_POOLS = (
    ("surtr-reasoning", "surtr", "deepseek-r1:14b", 2, ("reasoning", "general"), 2.0),
    (
        "fenrir-chat",
        "fenrir",
        "llama3.1:8b",
        3,
        ("text-processing", "summarize", "text-extraction"),
        1.0,
    ),
    ("skadi-code", "skadi", "qwen2.5-coder:7b", 2, ("code-generation", "code-refactor"), 1.5),
)

_SLOTS_NOTE = """
# Slots: how many requests a host runs at once. Raise them while GPU memory holds every loaded
# model plus each request's context and utilisation stays below ~90%; lower them when
# requests start queueing inside the host (latency grows, throughput does not).
"""


def example_config(*, demo: bool = False) -> str:
    parts = [_HEADER, _SLOTS_NOTE]
    for name, host, model, slots, kinds, seconds in _POOLS:
        kind_list = ", ".join(f'"{kind}"' for kind in kinds)
        parts.append(f'\n[pools.{name}]\nhost = "{host}"\n')
        if demo:
            parts.append(
                f'backend = "sim"               # simulated: sleeps, then answers\n'
                f"seconds = {seconds}\n"
            )
        else:
            parts.append(f'backend = "ollama"\nurl = "http://{host}:11434"\nmodel = "{model}"\n')
        parts.append(f"slots = {slots}\nkinds = [{kind_list}]\n")
    return "".join(parts)
