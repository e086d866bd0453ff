"""A loopback TCP proxy that adds a round-trip time: a researcher's client on another network.

``benchmarks/query_throughput.py --rtt-ms 50`` puts it between both clients (pystac-client
and eomatch-query) and the stack's nginx. Every byte is held for half the round trip on
its way up and half on its way back, so each HTTP request/response pays ``rtt_ms`` once,
as over a real network; bytes are not throttled otherwise (chunks in flight are queued
with the time they may leave, so many requests can be in flight at once, as on a long
fat link). A new connection is accepted at once (a real one costs one more round trip
for TCP's handshake): clients keep their connections alive, so this changes little.

It runs in its own process (``python benchmarks/_delay_proxy.py --listen-port P
--upstream-port U --rtt-ms R``; it prints ``listening on 127.0.0.1:P`` when ready), so
it never takes the client's GIL. It only moves bytes between sockets with asyncio (no
parsing, one thread, sleeping in the event loop), so it needs little CPU and cannot
starve the server; the benchmark measures its CPU and prints it as a column anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

CHUNK_BYTES = 256 * 1024


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]],
) -> None:
    """Copy ``reader`` to ``writer``, each chunk leaving ``delay_s`` after it arrived.

    A reading task stamps chunks with their departure time; this task writes them in
    order when due. The reader's end (EOF) is passed on, delayed like data, as a
    half-close (``write_eof``), so a peer that closes its side is seen closing.
    """
    due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while chunk := await reader.read(CHUNK_BYTES):
                due.put_nowait((clock() + delay_s, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            due.put_nowait((clock() + delay_s, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            when, chunk = await due.get()
            if (wait_s := when - clock()) > 0:
                await sleep(wait_s)
            if not chunk:
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


class DelayProxy:
    """Accepts connections and relays each to ``upstream``, ``rtt_s / 2`` each way."""

    def __init__(
        self,
        upstream: tuple[str, int],
        rtt_s: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.upstream = upstream
        self.one_way_s = max(0.0, rtt_s) / 2
        self.clock = clock
        self.sleep = sleep
        self.connections = 0

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """Relay one client connection both ways until both directions have ended."""
        self.connections += 1
        clock = self.clock or asyncio.get_running_loop().time
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                _pipe(client_r, up_w, self.one_way_s, clock, self.sleep),
                _pipe(up_r, client_w, self.one_way_s, clock, self.sleep),
            )
        finally:
            for w in (up_w, client_w):
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()

    async def serve(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port`` (0: any free port, see ``server.sockets``)."""
        return await asyncio.start_server(self.handle, host, port)


async def _main(args: argparse.Namespace) -> None:
    proxy = DelayProxy(("127.0.0.1", args.upstream_port), args.rtt_ms / 1000)
    server = await proxy.serve("127.0.0.1", args.listen_port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--rtt-ms", type=float, required=True)
    args = parser.parse_args()
    if args.rtt_ms < 0:
        parser.error(f"--rtt-ms must be >= 0, got {args.rtt_ms}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
