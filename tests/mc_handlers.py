"""
Event handlers for the multicore tests (L{tests.test_workers}).  Worker
processes unpickle them, so they live at module level of an importable
module and keep only picklable attributes.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from gnetcompat import Action, BuiltinEventEngine


def _note(path: str | None, text: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(f"{text} {os.getpid()}\n")


def _count(path: str | None, event: str) -> int:
    if not path or not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.split()[:1] == [event])


class PidEcho(BuiltinEventEngine):
    """
    A line protocol: C{pid} answers this worker's pid, C{path} its
    C{sys.path} and loaded module names (JSON), C{count} the
    engine-wide C{CountConnections()}, C{stop} returns Shutdown, anything
    else is echoed.  On a local close (engine shutdown) it writes C{bye}
    first.  C{openDelay} blocks the worker briefly per accept, so a shared
    listening socket is visibly shared.  C{notes} names a file where
    OnBoot/OnShutdown/OnTick append a line with the pid.
    """

    def __init__(
        self, openDelay: float = 0.0, notes: str | None = None, tickStop: bool = False
    ) -> None:
        self.openDelay = openDelay
        self.notes = notes
        self.tickStop = tickStop
        self.engine: Any = None
        self.ticks = 0

    def __getstate__(self) -> dict:
        return {"openDelay": self.openDelay, "notes": self.notes, "tickStop": self.tickStop}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def OnBoot(self, eng: Any) -> Action:
        self.engine = eng
        _note(self.notes, "boot")
        return Action.NONE

    def OnShutdown(self, eng: Any) -> None:
        _note(self.notes, "shutdown")

    def OnOpen(self, c: Any) -> tuple[bytes | None, Action]:
        if self.openDelay:
            time.sleep(self.openDelay)  # a worker's reactor, on purpose
        return None, Action.NONE

    def OnTraffic(self, c: Any) -> Action:
        buf = c.Peek(-1)
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            c.Discard(len(line) + 1)
            cmd = line.strip()
            if cmd == b"pid":
                c.Write(b"%d\n" % os.getpid())
            elif cmd == b"path":
                import json
                import sys

                c.Write(json.dumps([sys.path, sorted(sys.modules)]).encode() + b"\n")
            elif cmd == b"count":
                c.Write(b"%d\n" % self.engine.CountConnections())
            elif cmd == b"stop":
                return Action.SHUTDOWN
            else:
                c.Write(cmd + b"\n")
        return Action.NONE

    def OnClose(self, c: Any, err: BaseException | None) -> Action:
        if err is None:
            c.Write(b"bye\n")  # a local close (engine shutdown): say goodbye first
        return Action.NONE

    def OnTick(self) -> tuple[float, Action]:
        self.ticks += 1
        _note(self.notes, "tick")
        if self.tickStop and self.ticks >= 2 and _count(self.notes, "boot") >= 2:
            # every worker has booted (and ticked here only): stop them all
            return 1.0, Action.SHUTDOWN
        return 0.1, Action.NONE


class BootsUntilMarked(PidEcho):
    """
    L{PidEcho} whose C{OnBoot} raises once the file C{marker} exists: the
    first workers serve, every later one (a replacement) dies at start.
    """

    def __init__(self, marker: str = "", notes: str | None = None) -> None:
        super().__init__(notes=notes)
        self.marker = marker

    def __getstate__(self) -> dict:
        return {"marker": self.marker, "notes": self.notes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def OnBoot(self, eng: Any) -> Action:
        if os.path.exists(self.marker):
            raise RuntimeError("this handler cannot boot any more")
        return super().OnBoot(eng)


class CrashOnBoot(BuiltinEventEngine):
    """OnBoot raises: every worker dies at start."""

    def OnBoot(self, eng: Any) -> Action:
        raise RuntimeError("this handler cannot boot")


class FailsToLoad(BuiltinEventEngine):
    """Pickles fine in the parent, cannot be unpickled in a worker."""

    def __reduce__(self) -> tuple:
        return (_refuse, ())


def _refuse() -> None:
    raise ImportError("no such handler in the worker")


class ExitsWhileLoading(BuiltinEventEngine):
    """Pickles fine in the parent; a worker unpickling it exits at once (status 7)."""

    def __reduce__(self) -> tuple:
        return (_exitNow, (7,))


def _exitNow(status: int) -> None:
    os._exit(status)


class OrderedWriter(BuiltinEventEngine):
    """
    Cross-thread writes under load (tests.test_gnet_examples): greets each
    connection with C{worker N}; a client's C{go N} line arms it, and the
    first tick that sees N connections (C{Conns()}: engine-wide with the
    registry) starts C{writers} threads, each writing C{perWriter} records
    C{W:SEQ} to the connections in turn (record SEQ to connection
    SEQ mod N).  C{viaHandle}: C{eng.AsyncWrite(handle, ...)} (process
    workers); otherwise C{c.AsyncWrite(...)} on the Conn objects kept in
    C{OnOpen} (gnet's way, one process).  With process workers only worker 0
    ticks, so the C{go} line goes to one of its connections.
    """

    def __init__(self, writers: int = 4, perWriter: int = 500, viaHandle: bool = False) -> None:
        self.writers = writers
        self.perWriter = perWriter
        self.viaHandle = viaHandle
        self.eng: Any = None
        self.conns: list[Any] = []
        self.goal = 0
        self.threads: list[threading.Thread] = []

    def __getstate__(self) -> dict:
        return {"writers": self.writers, "perWriter": self.perWriter, "viaHandle": self.viaHandle}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def OnBoot(self, eng: Any) -> Action:
        self.eng = eng
        return Action.NONE

    def OnOpen(self, c: Any) -> tuple[bytes | None, Action]:
        self.conns.append(c)
        return b"worker %d\n" % self.eng.workerIndex, Action.NONE

    def OnClose(self, c: Any, err: BaseException | None) -> Action:
        self.conns.remove(c)
        return Action.NONE

    def OnTraffic(self, c: Any) -> Action:
        line = c.Next(-1).strip()
        if line.startswith(b"go "):
            self.goal = int(line[3:])
        return Action.NONE

    def OnTick(self) -> tuple[float, Action]:
        if self.goal and not self.threads:
            targets = self.eng.Conns() if self.viaHandle else list(self.conns)
            if len(targets) >= self.goal:
                targets.sort(key=lambda t: t.remote if self.viaHandle else t.RemoteAddr().String())
                self.threads = [
                    threading.Thread(target=self.write, args=(w, targets), daemon=True)
                    for w in range(self.writers)
                ]
                for t in self.threads:
                    t.start()
        return 0.02, Action.NONE

    def write(self, writer: int, targets: list[Any]) -> None:
        for seq in range(self.perWriter):
            target = targets[seq % len(targets)]
            record = b"%d:%d\n" % (writer, seq)
            if self.viaHandle:
                self.eng.AsyncWrite(target, record)
            else:
                target.AsyncWrite(record)
