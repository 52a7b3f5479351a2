"""
L{RecordingSink}: the one fake byte sink the WebSocket session tests
(C{test_wsproto}, C{test_autobahncompat}, C{test_xormask}) give a
L{gnetcompat.websocket.WebSocketSession} instead of a connection.
"""

from __future__ import annotations


class RecordingSink:
    """
    A sink that records what the session does to the byte stream: the
    bytes written, in order, and whether it closed or aborted the stream.

    @ivar data: the chunks written, in order (see L{take}).
    @ivar lost: whether C{loseConnection} was called.
    @ivar aborted: whether C{abortConnection} was called.
    """

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.lost = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.data.extend(data)

    def loseConnection(self) -> None:
        self.lost = True

    def abortConnection(self) -> None:
        self.aborted = True

    def take(self) -> bytes:
        """
        Return and forget everything written so far.
        """
        out = b"".join(self.data)
        self.data = []
        return out
