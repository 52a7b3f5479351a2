"""
Property tests: the Conn Reader API against a plain bytes model.

Incoming data is split at random into reads (and Wakes); inside each
C{OnTraffic} a random list of C{Next}/C{Peek}/C{Discard}/C{Read}/
C{InboundBuffered} operations runs against the Conn and against the model
(spec §7.2), and every result must agree.  The model also pins that retained
bytes never re-fire C{OnTraffic}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

import gnetcompat as gnet
from gnetcompat.errors import ErrShortBuffer
from gnetcompat.testing import HandlerDriver

SHORT = "ErrShortBuffer"

sizes = st.integers(min_value=-3, max_value=40)
ops = st.one_of(
    st.tuples(st.sampled_from(["Next", "Peek", "Discard", "Read"]), sizes),
    st.tuples(st.just("InboundBuffered"), st.just(0)),
)
#: one step: new bytes (or None for a Wake) and the operations to run then
steps = st.lists(
    st.tuples(st.one_of(st.none(), st.binary(min_size=1, max_size=48)), st.lists(ops, max_size=8)),
    min_size=1,
    max_size=12,
)


def model(buf: bytes, op: str, n: int) -> tuple[Any, bytes]:
    """What gnet specifies for C{op(n)} on readable bytes C{buf}: C{(result, rest)}."""
    if op == "InboundBuffered":
        return len(buf), buf
    if op == "Discard":
        if n <= 0 or n >= len(buf):
            return len(buf), b""
        return n, buf[n:]
    if op == "Read":
        size = max(n, 0)
        if size == 0:
            return (0, b""), buf
        if not buf:
            return SHORT, buf
        k = min(size, len(buf))
        return (k, buf[:k]), buf[k:]
    if n <= 0:
        return buf, (buf if op == "Peek" else b"")
    if n > len(buf):
        return SHORT, buf
    return buf[:n], (buf if op == "Peek" else buf[n:])


def real(c: Any, op: str, n: int) -> Any:
    """Run C{op(n)} on the Conn, with gnet's error as a marker."""
    try:
        if op == "InboundBuffered":
            return c.InboundBuffered()
        if op == "Read":
            p = bytearray(max(n, 0))
            k = c.Read(p)
            return k, bytes(p[:k])
        return getattr(c, op)(n)
    except ErrShortBuffer:
        return SHORT


class ReaderModelTests(SynchronousTestCase):
    """The Reader methods agree with the bytes model under random splits and operations."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps)
    def test_readerMatchesModel(
        self, plan: list[tuple[bytes | None, list[tuple[str, int]]]]
    ) -> None:
        """
        For any split of the input into reads and Wakes and any operations,
        every result equals the model's, the bytes left over are the model's,
        and C{OnTraffic} runs exactly once per read or Wake.
        """
        state: dict[str, Any] = {"buf": b"", "ops": [], "calls": 0, "mismatch": []}

        class H(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                state["calls"] += 1
                if c.Peek(-1) != state["buf"]:
                    state["mismatch"].append(("visible", c.Peek(-1), state["buf"]))
                for op, n in state["ops"]:
                    expected, state["buf"] = model(state["buf"], op, n)
                    got = real(c, op, n)
                    if got != expected:
                        state["mismatch"].append((op, n, got, expected))
                return gnet.None_

        driver = HandlerDriver(H())
        driver.boot()
        peer = driver.connect()
        for i, (data, todo) in enumerate(plan):
            state["ops"] = todo
            if data is None:
                peer.conn.Wake()
                driver.runPending()
            else:
                state["buf"] += data
                peer.send(data)
            self.assertEqual(state["mismatch"], [])
            self.assertEqual(state["calls"], i + 1)
            self.assertEqual(peer.conn.InboundBuffered(), len(state["buf"]))
        driver.advance(5)
        self.assertEqual(state["calls"], len(plan))

    @settings(max_examples=75, deadline=None)
    @given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=50), max_size=20))
    def test_splitsDoNotChangeFrames(self, data: bytes, cuts: list[int]) -> None:
        """However the stream is split into reads, a fixed-size framer sees the same frames."""
        frames: list[bytes] = []

        class H(gnet.BuiltinEventEngine):
            def OnTraffic(self, c: Any) -> Any:
                while c.InboundBuffered() >= 7:
                    frames.append(c.Next(7))

        driver = HandlerDriver(H())
        driver.boot()
        peer = driver.connect()
        rest = data
        for cut in cuts:
            if not rest:
                break
            peer.send(rest[:cut])
            rest = rest[cut:]
        if rest:
            peer.send(rest)
        whole = len(data) // 7 * 7
        self.assertEqual(b"".join(frames), data[:whole])
        self.assertEqual(peer.conn.Peek(-1), data[whole:])
