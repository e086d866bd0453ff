"""benchmarks/query_throughput.py's remote-client option: the delaying proxy and its flags.

The proxy is checked in-process with a clock that only moves when the proxy sleeps, so
the delays it asks for are exact whatever the machine's load (no timed assertion).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from _delay_proxy import CHUNK_BYTES, DelayProxy  # noqa: E402


class _FakeTime:
    """A clock that advances only by what the proxy sleeps; records each sleep."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds
        await asyncio.sleep(0)


async def _exchange(request: bytes, rtt_s: float, fake: _FakeTime) -> tuple[bytes, bytes, int]:
    """Send ``request`` through a DelayProxy to an upstream that answers its reversed bytes
    once the client has half-closed; return (what upstream got, what the client got, connections)."""
    got: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF, passed on by the proxy
        got.append(data)
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    up = await asyncio.start_server(upstream, "127.0.0.1", 0)
    proxy = DelayProxy(("127.0.0.1", up.sockets[0].getsockname()[1]), rtt_s, clock=fake.clock, sleep=fake.sleep)
    server = await proxy.serve("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(request)
        await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), timeout=60)  # until upstream's close, passed on
        writer.close()
        return got[0], answer, proxy.connections
    finally:
        server.close()
        up.close()


def test_delay_proxy_relays_both_ways_unchanged_and_holds_each_way_half_the_rtt() -> None:
    request = bytes(range(256)) * (3 * CHUNK_BYTES // 256 + 7)  # several chunks each way
    fake = _FakeTime()
    upstream_got, answer, connections = asyncio.run(_exchange(request, 0.05, fake))
    assert upstream_got == request
    assert answer == request[::-1]
    assert connections == 1
    # Data and ends leave half the round trip after they arrived, never later: the
    # request's way up and the answer's way back each wait 25 ms on the proxy's clock.
    assert fake.sleeps and all(s <= 0.025 + 1e-9 for s in fake.sleeps)
    assert fake.sleeps[0] == pytest.approx(0.025)
    # the answer only starts after the request went up: its first byte waits again
    assert fake.now_s >= 0.05 - 1e-9


def test_delay_proxy_with_no_rtt_never_sleeps() -> None:
    fake = _FakeTime()
    upstream_got, answer, _ = asyncio.run(_exchange(b"GET / HTTP/1.1\r\n\r\n", 0.0, fake))
    assert upstream_got == b"GET / HTTP/1.1\r\n\r\n"
    assert answer == upstream_got[::-1]
    assert fake.sleeps == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rtt-ms", "-5"], "--rtt-ms must be >= 0, got -5.0"),
        (["--rtt-ms", "50", "--base-url", "http://127.0.0.1:9", "--state-dir", "/tmp/x"], "--rtt-ms needs the stack started here"),
    ],
)
def test_query_benchmark_refuses_bad_rtt_flags_in_one_line(flags: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "query_throughput.py"), *flags], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.stack
def test_query_benchmark_runs_end_to_end_through_the_delaying_proxy() -> None:
    """A small run with --rtt-ms: its own stack, links checked to go through the proxy, every
    eomatch-query phase with the same count, a proxy CPU column, ``ratio=`` last."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "query_throughput.py"), "--items", "400", "--page-size", "100",
         "--repeat", "1", "--parallel", "2", "--rtt-ms", "5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert any("clients through a proxy adding 5 ms per round trip" in ln for ln in lines)
    phases = [ln for ln in lines if "CPU per item:" in ln]
    assert len(phases) == 4
    assert all(", proxy " in ln and ln.rstrip().split("CPU per item:")[1].count("proxy") == 1 for ln in phases)
    assert all("400 items in" in ln for ln in phases)
    assert lines[-1].startswith("ratio=") and float(lines[-1].removeprefix("ratio=")) > 0
