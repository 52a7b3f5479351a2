"""
Fuzzing the WebSocket echo handler through L{gnetcompat.testing.HandlerDriver}.

Hypothesis builds byte streams (a valid upgrade request and valid frames
from a generator, then random mutations, random splits into reads, extra
garbage, or plain random bytes) and feeds them to the real
L{WebSocketEchoServer} on an in-memory engine (no sockets, fake clock).

For every stream: nothing escapes and nothing is logged as a failure, the
connection ends in a defined state (open and echoing, or closed with a Close
frame whose code is 1000/1001/1002/1007/1009, or an HTTP 4xx answer, or
dropped by the opening-handshake timeout before any upgrade), and a fresh
connection on the same driver still echoes.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat.echo import WebSocketEchoServer
from gnetcompat.testing import FakePeer, HandlerDriver
from gnetcompat.websocket import WebSocketOptions
from tests._hardening_util import closeFrame, frame, upgradeRequest

#: Close codes a connection may end with.
ALLOWED_CLOSE = {1000, 1001, 1002, 1007, 1009}

#: Small limits so the generator reaches them (1009) with small inputs.
MAX_FRAME = 4096
MAX_MESSAGE = 8192

_MARKER = b"fuzz-marker-\x00\x01"

#: An HTTP refusal of the upgrade: 4xx, or Autobahn's 505 for a request line
#: whose HTTP version is not HTTP/1.1 (a mutated "HTTP/1.1").
_HTTP_REFUSAL = rb"^HTTP/1\.1 (4\d\d|505) "


def _parseServer(data: bytes) -> tuple[bytes, list[tuple[int, bytes]], bytes]:
    """
    Split what the server wrote into its HTTP status line, the frames that
    followed the 101, and any trailing bytes that are not a whole frame.
    """
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return data.split(b"\r\n", 1)[0], [], b""
    status = head.split(b"\r\n", 1)[0]
    frames = []
    while len(rest) >= 2:
        if rest[1] & 0x80:
            raise AssertionError(f"the server sent a masked frame: {rest[:16]!r}")
        n = rest[1] & 0x7F
        off = 2
        if n == 126:
            if len(rest) < 4:
                break
            n, off = struct.unpack("!H", rest[2:4])[0], 4
        elif n == 127:
            if len(rest) < 10:
                break
            n, off = struct.unpack("!Q", rest[2:10])[0], 10
        if len(rest) < off + n:
            break
        frames.append((rest[0], rest[off : off + n]))
        rest = rest[off + n :]
    return status, frames, rest


# -- the generator ---------------------------------------------------------

_masks = st.binary(min_size=4, max_size=4)
_text = st.text(max_size=300).map(lambda s: s.encode("utf-8"))


@st.composite
def _frameBytes(draw: Any) -> bytes:
    """One valid client frame, or a valid fragmented message."""
    kind = draw(st.sampled_from(["text", "binary", "ping", "pong", "frag", "big", "close"]))
    mask = draw(_masks)
    if kind == "text":
        return frame(1, draw(_text), mask=mask)
    if kind == "binary":
        return frame(2, draw(st.binary(max_size=600)), mask=mask)
    if kind == "ping":
        return frame(9, draw(st.binary(max_size=125)), mask=mask)
    if kind == "pong":
        return frame(10, draw(st.binary(max_size=125)), mask=mask)
    if kind == "big":
        size = draw(st.sampled_from([MAX_FRAME - 1, MAX_FRAME + 1, 70000]))
        return frame(2, b"b" * size, mask=mask)
    if kind == "close":
        code = draw(st.sampled_from([1000, 1001, 1003, 3000, 4999, 999, 1005, 5000]))
        return closeFrame(code, draw(st.binary(max_size=20)))
    parts = draw(st.lists(st.binary(max_size=100), min_size=2, max_size=4))
    opcode = draw(st.sampled_from([1, 2]))
    if opcode == 1:
        parts = [p.hex().encode() for p in parts]
    out = b""
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        out += frame(opcode if i == 0 else 0, p, fin=last, mask=mask)
        if not last and draw(st.booleans()):
            out += frame(9, b"mid", mask=mask)  # control frame between fragments
    return out


@st.composite
def _mutation(draw: Any) -> tuple:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "replace"]))
    pos = draw(st.floats(min_value=0.0, max_value=1.0))
    if kind == "flip":
        return (kind, pos, draw(st.integers(0, 7)))
    if kind == "insert":
        return (kind, pos, draw(st.binary(min_size=1, max_size=16)))
    if kind == "delete":
        return (kind, pos, draw(st.integers(1, 16)))
    if kind == "replace":
        return (kind, pos, draw(st.integers(0, 255)))
    return (kind, pos, None)


def _mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in mutations:
        if not buf:
            break
        i = min(int(pos * len(buf)), len(buf) - 1)
        if kind == "flip":
            buf[i] ^= 1 << arg
        elif kind == "insert":
            buf[i:i] = arg
        elif kind == "delete":
            del buf[i : i + arg]
        elif kind == "replace":
            buf[i] = arg
        else:
            del buf[i:]
    return bytes(buf)


@st.composite
def streams(draw: Any) -> tuple[bytes, list[int]]:
    """
    A client byte stream and the sizes of the reads it arrives in.
    """
    shape = draw(st.sampled_from(["valid", "mutated", "mutated", "garbage-after", "random"]))
    if shape == "random":
        data = draw(st.binary(min_size=1, max_size=2000))
    else:
        data = upgradeRequest(port=9000) + b"".join(draw(st.lists(_frameBytes(), max_size=8)))
        if shape == "mutated":
            data = _mutate(data, draw(st.lists(_mutation(), min_size=1, max_size=4)))
        elif shape == "garbage-after":
            data += draw(st.binary(min_size=1, max_size=200))
    cuts = draw(st.lists(st.integers(1, 400), max_size=6))
    return data, cuts


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    out = []
    for n in cuts:
        if not data:
            break
        out.append(data[:n])
        data = data[n:]
    if data:
        out.append(data)
    return out


# -- the checks --------------------------------------------------------------


class _Outcome:
    """What happened to one connection (for failure messages)."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def __repr__(self) -> str:
        return f"<closed={self.closed} written={self.written[:300]!r}>"


def _drain(peer: FakePeer, out: _Outcome) -> None:
    out.written += peer.received()
    out.closed = out.closed or peer.closedByServer


#: How the fuzzed connections ended (printed after the run).
_OUTCOMES: Counter = Counter()


class WebSocketFuzzTests(SynchronousTestCase):
    """Random and mutated streams never break the echo handler."""

    def setUp(self) -> None:
        self.failures: list[dict] = []

        def observer(event: dict) -> None:
            if event.get("log_failure") is not None:
                self.failures.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        options = WebSocketOptions(
            maxFramePayloadSize=MAX_FRAME,
            maxMessagePayloadSize=MAX_MESSAGE,
            openHandshakeTimeout=5.0,
            closeHandshakeTimeout=1.0,
            compression=False,
        )
        self.handler = WebSocketEchoServer(wsOptions=options, tick=0)
        self.driver = HandlerDriver(self.handler, gnet.WithTicker(False))
        self.driver.boot()

    def assertEchoes(self, peer: FakePeer, out: _Outcome) -> bool:
        """
        Send a marker message; True if it was echoed, False if the connection
        closed (checked by the caller), None if it is still waiting for the
        rest of a frame.
        """
        peer.send(frame(2, _MARKER, mask=os.urandom(4)))
        _drain(peer, out)
        _, frames, _ = _parseServer(out.written)
        return any(op == 0x82 and p == _MARKER for op, p in frames)

    def checkEnd(self, peer: FakePeer, out: _Outcome) -> str:
        """
        Drive the connection to a defined end and return its name; fail on
        anything else.
        """
        _drain(peer, out)
        status, frames, _ = _parseServer(out.written)
        if not out.closed and not status.startswith(b"HTTP/1.1 101"):
            if status:
                self.fail(f"answered {status!r} but left the connection open: {out!r}")
            # still in the opening handshake: the timeout must end it
            self.driver.advance(6)
            _drain(peer, out)
            status, frames, _ = _parseServer(out.written)
            if not out.closed:
                self.fail(f"handshake never completed nor timed out: {out!r}")
            if status:
                self.assertRegex(status, _HTTP_REFUSAL, out)
                return "http-4xx"
            return "handshake-timeout"
        if not status.startswith(b"HTTP/1.1 101"):
            self.assertRegex(status, _HTTP_REFUSAL, out)
            self.assertTrue(out.closed, out)
            return "http-4xx"
        closes = [p for op, p in frames if op & 0x0F == 8]
        if not out.closed and not closes:
            if self.assertEchoes(peer, out):
                return "open-echoing"
            status, frames, _ = _parseServer(out.written)
            closes = [p for op, p in frames if op & 0x0F == 8]
            if not closes and not out.closed:
                # the marker went into an unfinished frame: finish any frame
                # (at most MAX_FRAME bytes pending); the zero bytes after it
                # are unmasked frames, a protocol error
                peer.send(b"\x00" * (MAX_FRAME + 20))
                _drain(peer, out)
                status, frames, _ = _parseServer(out.written)
                closes = [p for op, p in frames if op & 0x0F == 8]
        if not closes:
            if not out.closed:
                self.fail(f"open but neither echoing nor closing: {out!r}")
            self.fail(f"closed without a Close frame: {out!r}")
        code = struct.unpack("!H", closes[0][:2])[0] if len(closes[0]) >= 2 else 1005
        if code not in ALLOWED_CLOSE:
            self.fail(f"closed with code {code}: {out!r}")
        if not out.closed:
            # we started (or answered) the closing handshake: the server's
            # close-handshake timer (1 s) or our Close reply ends it
            peer.send(closeFrame(1000))
            self.driver.advance(2)
            _drain(peer, out)
            self.assertTrue(out.closed, f"Close sent but connection kept open: {out!r}")
        return f"close-{code}"

    def freshConnectionEchoes(self) -> None:
        """A new connection on the same driver upgrades and echoes."""
        peer = self.driver.connect()
        peer.send(upgradeRequest(port=9000))
        out = _Outcome()
        _drain(peer, out)
        self.assertTrue(out.written.startswith(b"HTTP/1.1 101"), out)
        self.assertTrue(self.assertEchoes(peer, out), out)
        peer.disconnect()

    def tearDown(self) -> None:
        if _OUTCOMES:
            print(f"\nfuzz outcomes: {dict(_OUTCOMES)}")
            _OUTCOMES.clear()

    @settings(
        max_examples=int(os.environ.get("WSFUZZ_EXAMPLES", "150")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(streams())
    def test_fuzzedStreams(self, example: tuple[bytes, list[int]]) -> None:
        """
        Any client byte stream, in any split: no failure is logged, the
        connection ends open-and-echoing, closed with an allowed Close code,
        answered with HTTP 4xx, or dropped by the handshake timeout; and a
        fresh connection on the same driver echoes afterwards.
        """
        data, cuts = example
        del self.failures[:]
        peer = self.driver.connect()
        out = _Outcome()
        for chunk in _chunks(data, cuts):
            if out.closed:
                break
            peer.send(chunk)
            _drain(peer, out)
        _OUTCOMES[self.checkEnd(peer, out)] += 1
        if not peer.transport.disconnected:
            peer.disconnect()
        self.driver.runPending()
        self.assertEqual(self.failures, [], "a failure was logged")
        self.freshConnectionEchoes()
        self.assertEqual(self.failures, [], "a failure was logged")
        self.assertEqual(self.driver.engine.CountConnections(), 0)
        self.assertEqual(self.handler._sockets, {})

    def test_validStreamEchoesEverything(self) -> None:
        """
        The generator's unmutated streams are valid: each data message comes
        back with its opcode (a sanity check of the harness itself).
        """
        peer = self.driver.connect()
        out = _Outcome()
        peer.send(upgradeRequest(port=9000) + frame(1, b"abc", mask=b"\x01\x02\x03\x04"))
        peer.send(frame(2, b"x" * 200, fin=False, mask=b"\x05\x06\x07\x08"))
        peer.send(frame(9, b"p") + frame(0, b"y", mask=b"\x09\x0a\x0b\x0c"))
        _drain(peer, out)
        status, frames, _ = _parseServer(out.written)
        self.assertEqual(status, b"HTTP/1.1 101 Switching Protocols")
        self.assertEqual(frames, [(0x81, b"abc"), (0x8A, b"p"), (0x82, b"x" * 200 + b"y")])
        self.assertEqual(self.checkEnd(peer, out), "open-echoing")
        self.assertEqual(self.failures, [])
