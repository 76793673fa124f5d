"""A TCP proxy on 127.0.0.1 that holds every chunk for `delay_s` each way before passing it on:
a database on another machine, for benchmarks (scripts/pg_drain_ab.py --delay-ms).

Its event loop runs in a thread of its own; its timers make the real delay longer than asked
(`round_trip_ms` measures it). Order is kept: each direction's chunks leave in arrival order.
"""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg

CHUNK = 65536


class DelayProxy:
    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.port = 0
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), name="delay-proxy", daemon=True).start()
        if not ready.wait(30):
            raise TimeoutError("the delay proxy did not start")

    def url(self, url: str) -> str:
        """`url` (a database of the target server) through this proxy."""
        return url.replace(f":{self.target_port}/", f":{self.port}/")

    def round_trip_ms(self, url: str, times: int = 50) -> float:
        """The median time of `SELECT 1` through the proxy."""
        with psycopg.connect(self.url(url), autocommit=True) as conn:
            samples = []
            for _ in range(times):
                started = time.perf_counter()
                conn.execute("SELECT 1").fetchone()
                samples.append((time.perf_counter() - started) * 1e3)
        return sorted(samples)[len(samples) // 2]

    def _serve(self, ready: threading.Event) -> None:
        async def start() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(reader, upstream[1]), self._pipe(upstream[0], writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await held.get()
                if not data:  # the other side closed
                    writer.close()
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)

        sender = asyncio.create_task(send())
        while data := await reader.read(CHUNK):
            held.put_nowait((time.monotonic() + self.delay_s, data))
        held.put_nowait((0.0, b""))
        await sender
