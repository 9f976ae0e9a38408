"""A TCP proxy on 127.0.0.1 between the soak's processes and Redis, for network faults.

It runs its own event loop in a thread of the soak, so the soak's own work never stalls it.
Faults, called from any thread:

- ``cut(seconds)``: close every connection and refuse new ones (accept, then close) for a
  while, as a network partition does;
- ``slow(delay, seconds)``: hold every chunk, both ways, ``delay`` seconds before passing it;
- ``cut_mid_reply(count)``: the next ``count`` replies from Redis are cut after half their
  bytes, and their connections closed: the client has sent a command and gets part of an
  answer.
"""

from __future__ import annotations

import asyncio
import threading
import time


class Proxy:
    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._down_until = 0.0
        self._delay = 0.0
        self._slow_until = 0.0
        self._mid_reply = 0
        self.cut_replies = 0  # replies actually cut, for the report
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.listen_port, backlog=512)
        )
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            self._close_all()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)

    # Faults ------------------------------------------------------------------------------

    def cut(self, seconds: float) -> None:
        def apply() -> None:
            self._down_until = time.monotonic() + seconds
            self._close_all()

        self.loop.call_soon_threadsafe(apply)

    def slow(self, delay: float, seconds: float) -> None:
        def apply() -> None:
            self._delay = delay
            self._slow_until = time.monotonic() + seconds

        self.loop.call_soon_threadsafe(apply)

    def cut_mid_reply(self, count: int) -> None:
        def apply() -> None:
            self._mid_reply = count

        self.loop.call_soon_threadsafe(apply)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite FIN after the buffers drain
        self._writers.clear()

    # Plumbing ----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._down_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()  # Redis is down: so is the connection through us
            return
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, reply=False)),
            asyncio.create_task(self._pump(up_reader, writer, reply=True)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if time.monotonic() < self._slow_until and self._delay:
                    await asyncio.sleep(self._delay)
                if reply and self._mid_reply > 0 and len(data) > 1:
                    self._mid_reply -= 1
                    self.cut_replies += 1
                    writer.write(data[: len(data) // 2])
                    await writer.drain()
                    return  # the caller closes both sides
                if time.monotonic() < self._down_until:
                    return
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return
