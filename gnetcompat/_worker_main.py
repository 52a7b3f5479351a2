# -*- test-case-name: tests.test_workers -*-
"""
A worker process of a process-worker engine (see L{gnetcompat._workers}):
C{python -I -u -c BOOTSTRAP gnetcompat-worker INDEX}, started by the parent
with C{reactor.spawnProcess}; the bootstrap sets C{sys.path} to the
parent's (the first line of stdin) and calls L{main}.

File descriptors: 0 the import path (one JSON line), then the pickled
payload (read to EOF), 1/2 log lines to
the parent (the log goes through L{_LogPipe}: a parent that stops reading
never blocks the worker's reactor; lines that do not fit are dropped and
counted), 3 the control pipe (C{ready}, C{beat}, C{shutdown}, C{fatal TEXT}),
4 the shared counters, 5 the bus to the other workers (L{gnetcompat._bus}),
6.. inherited listening sockets.  Exit status: 0 after
a graceful stop, 1 when the engine failed (C{OnBoot} raised, a bind failed),
3 when the handler could not be loaded.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import LogEvent, Logger, LogLevel, formatEvent, globalLogBeginner

from ._addr import ListenSpec, createListener
from ._bus import SharedCounters, WorkerBus, adoptBus
from ._engine import Engine
from ._logging import isTwistedChatter, setupProgramLogging
from ._workers import (
    WorkerPayload,
    checkMainGlobals,
    loadMain,
    mainGlobalsMessage,
    stopReactor,
)
from .errors import GnetError

installGnetReactor: Callable[[], object] | None
try:
    from .reactor import install

    installGnetReactor = install
except ImportError:  # pragma: no cover - no epoll (not Linux)
    installGnetReactor = None

CONTROL_FD = 3
COUNTERS_FD = 4
BUS_FD = 5

#: the line saying how many log lines a full pipe made us drop (a warning in the parent)
_DROPPED = b"warn %d log lines dropped: the log pipe to the parent was full\n"


def _send(line: str) -> None:
    try:
        os.write(CONTROL_FD, (line + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _parentDeathSignal() -> None:
    """Linux: get SIGTERM when the parent dies (a pid check covers the rest)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _LogPipe:
    """
    The worker's log lines to the parent, written without ever blocking the
    worker's reactor.  The parent reads them from the worker's stdout pipe;
    when it does not (it is stalled, or busy), the pipe fills, and a plain
    write would block this worker until it drains.  Here a write that does
    not fit waits in a buffer of at most L{MAX_PENDING} bytes (complete
    lines), lines beyond are dropped and counted, and once the pipe drained
    one line says how many were dropped.  What waits is retried every
    L{RETRY} seconds on C{clock} (set once the reactor exists), and at every
    new line.

    @ivar dropped: lines dropped since the last report.
    """

    #: bytes of lines kept while the pipe is full
    MAX_PENDING = 256 * 1024
    #: seconds between two tries to write what waits
    RETRY = 0.1

    def __init__(self, fd: int, clock: IReactorTime | None = None) -> None:
        """
        @param fd: a non-blocking descriptor of the pipe (see L{open}).
        @param clock: the C{IReactorTime} for the retries, or C{None} (then
            only a new line retries; set the C{clock} attribute later).
        """
        self.fd = fd
        self.clock = clock
        self.pending = bytearray()
        self.dropped = 0
        self._broken = False
        self._retry: IDelayedCall | None = None

    @classmethod
    def open(cls, fd: int = 1) -> _LogPipe:
        """
        A L{_LogPipe} on descriptor C{fd} (stdout).  A pipe is opened again
        through C{/proc/self/fd} (a file description of our own) and made
        non-blocking there, so C{fd} itself, where C{print} writes, stays
        as it was.  Anything else (a file, a terminal) is written as it is.
        """
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                return cls(own)
        except OSError:
            pass
        return cls(os.dup(fd))

    def _send(self, data: bytes | bytearray) -> int:
        if self._broken:
            return len(data)
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError:  # the parent is gone (EPIPE): nobody reads any more
            self._broken = True
            self.pending.clear()
            self.dropped = 0
            return len(data)

    def flush(self) -> bool:
        """
        Write what waits, then (once it is all written) the count of dropped
        lines.  @return: whether nothing waits any more.
        """
        while True:
            if not self.pending:
                if not self.dropped:
                    return True
                self.pending += _DROPPED % self.dropped
                self.dropped = 0
            n = self._send(self.pending)
            if not n:
                return False
            del self.pending[:n]

    def write(self, data: bytes) -> None:
        """Write complete lines now if the pipe takes them, else keep or drop them."""
        if self.pending and not self.flush():
            if not self.dropped and len(self.pending) + len(data) <= self.MAX_PENDING:
                self.pending += data
            else:
                self.dropped += data.count(b"\n")
            self._schedule()
            return
        n = self._send(data)
        if n < len(data):
            self.pending += data[n:]  # the rest of a line already begun: always kept
            self._schedule()

    def _schedule(self) -> None:
        if self._retry is None and self.clock is not None:
            self._retry = self.clock.callLater(self.RETRY, self._again)

    def _again(self) -> None:
        self._retry = None
        if not self.flush():
            self._schedule()

    def close(self, timeout: float = 2.0) -> None:
        """At exit: wait up to C{timeout} seconds for what waits to be written."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        deadline = time.monotonic() + timeout
        while not self.flush():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([], [self.fd], [], left)
        os.close(self.fd)


def _namespaceText(namespace: object) -> str:
    """A log namespace as one word for the parent (C{[worker N]} lines keep it)."""
    text = namespace if isinstance(namespace, str) and namespace else "gnetcompat"
    return "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in text[:100])


def _logObserver(minLevel: LogLevel, write: Callable[[bytes], None]) -> Callable[[LogEvent], None]:
    """
    The worker's log observer: each event at C{minLevel} or above as lines
    C{LEVEL TEXT} (a failure's traceback too), given to C{write} as one
    C{bytes} of complete lines.
    """

    def observer(event: LogEvent) -> None:
        level = event.get("log_level")
        if level is not None and level < minLevel:
            return
        if isTwistedChatter(event):  # a port starting or closing: the parent says it once
            return
        try:
            text = formatEvent(event)
            if event.get("log_failure") is not None:
                text += "\n" + event["log_failure"].getTraceback()
        except Exception:
            text = repr(event)
        name = level.name if level is not None else "info"
        head = f"{name}@{_namespaceText(event.get('log_namespace'))}"
        lines = "".join(f"{head} {line}\n" for line in text.splitlines() or [""])
        write(lines.encode("utf-8", "replace"))

    return observer


def _startLogging(minLevel: LogLevel) -> _LogPipe:
    """Send the log to the parent through a L{_LogPipe} on stdout; return it."""
    sys.stdout.flush()
    pipe = _LogPipe.open(1)
    # Twisted calls any callable observer; its annotation names the interface only
    globalLogBeginner.beginLoggingTo(
        [_logObserver(minLevel, pipe.write)],  # type: ignore[list-item]
        discardBuffer=False,
        redirectStandardIO=False,
    )
    return pipe


def _oneLine(e: BaseException) -> str:
    """C{e} as one log line: our errors by their message, others with their type."""
    text = str(e) if isinstance(e, GnetError) and str(e) else f"{type(e).__name__}: {e}"
    return text.replace("\r", "\\r").replace("\n", "\\n")


class _Worker:
    """One worker: an L{Engine} on this process's reactor, wired to the parent."""

    def __init__(
        self, reactor: Any, payload: WorkerPayload, handler: Any, send: Callable[[str], None]
    ) -> None:
        self.reactor = reactor
        self.payload = payload
        self.handler = handler
        self.send = send
        self.index: int = payload["index"]
        self.exitCode = 0
        self.stopFromParent = False
        self.engine: Engine | None = None
        self.log = Logger(namespace="gnetcompat.worker")
        self._ppid = payload["ppid"]

    def start(self) -> None:
        try:
            self._start()
        except BaseException as e:
            # one line for the parent's log (a crash loop repeats it); the
            # traceback only with --log-level debug
            self.log.error(
                "worker {index} failed to start: {error}", index=self.index, error=_oneLine(e)
            )
            self.log.failure(
                "worker {index} failed to start", index=self.index, level=LogLevel.debug
            )
            self.exitCode = 1
            self._stopReactor()

    def _start(self) -> None:
        p = self.payload
        eng = self.engine = Engine(self.handler, p["specs"], p["options"], self.reactor)
        eng.workerIndex = self.index
        eng.workerGeneration = p["generation"]
        eng.numWorkers = p["workers"]
        shm = self.shm = SharedCounters(p["workers"], fd=COUNTERS_FD)
        index = self.index
        shm.set(index, 0)
        eng.sharedCount = shm.total

        def publishCount(count: int) -> None:
            shm.set(index, count)

        eng.setConnectionObserver(publishCount)
        bus = WorkerBus(eng, shm)
        adoptBus(self.reactor, BUS_FD, bus.proto)
        os.close(BUS_FD)
        eng.bus = bus
        eng.onShutdownRequest = self._engineStopping
        eng.tickerEnabled = bool(p["ticker"])
        listeners: list[tuple[ListenSpec, socket.socket, int]] = []
        try:
            for spec, fd, family, bindSpec in p["listeners"]:
                if fd is not None:
                    sock = socket.socket(fileno=fd)
                    sock.setblocking(False)
                    listeners.append((spec, sock, sock.family))
                else:
                    assert bindSpec is not None  # (no descriptor: the parent sent what to bind)
                    sock, family = createListener(bindSpec, eng.options)
                    listeners.append((spec, sock, family))
        except BaseException:
            for _, s, _ in listeners:
                s.close()
            raise
        eng.bind(listeners)
        signal.signal(signal.SIGTERM, self._onSignal)
        signal.signal(signal.SIGINT, self._onSignal)
        if not eng.boot():
            # OnBoot returned Shutdown: this engine-wide stop is the worker's request
            self.send("shutdown")
            self._stopReactor()
            return
        self.reactor.addSystemEventTrigger("before", "shutdown", self._beforeShutdown)
        eng.whenStopped().addBoth(lambda _: self._stopReactor())
        self._watch = LoopingCall(self._checkParent)
        self._watch.clock = self.reactor
        self._watch.start(1.0, now=False)
        self.send("ready")
        interval = p.get("heartbeat") or 0
        if interval:
            # proof of life for the parent: only a running reactor sends it
            self._beat = LoopingCall(self.send, "beat")
            self._beat.clock = self.reactor
            self._beat.start(interval, now=False)

    def _engineStopping(self) -> None:
        # Engine.onShutdownRequest: a Shutdown action or Stop() in this worker
        if not self.stopFromParent:
            self.send("shutdown")

    def _onSignal(self, signum: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self._stopNow)

    def _stopNow(self) -> None:
        self.stopFromParent = True
        eng = self.engine
        if eng is not None and not eng.stopping:
            eng.requestShutdown(fromLoop=False)
        elif eng is None:
            self._stopReactor()

    def _checkParent(self) -> None:
        if os.getppid() != self._ppid:
            self.log.warn("worker {index}: the parent process is gone; stopping", index=self.index)
            self._stopNow()

    def _beforeShutdown(self) -> Deferred[None] | None:
        eng = self.engine
        if eng is None or eng.stopped:
            return None
        if not eng.stopping:
            self.stopFromParent = True
            eng.requestShutdown(fromLoop=False)
        return eng.whenStopped()

    def _stopReactor(self) -> None:
        for call in (getattr(self, "_watch", None), getattr(self, "_beat", None)):
            if call is not None and call.running:
                call.stop()
        if self.reactor.running:
            stopReactor(self.reactor)
        else:
            self.reactor.callWhenRunning(stopReactor, self.reactor)


def main(argv: list[str]) -> int:
    """Load the payload and handler, then serve until told to stop."""
    _parentDeathSignal()
    # the parent's Ctrl-C reaches the whole process group: until our reactor
    # handles it, ignore it (the parent stops us with SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a hang-up is the parent's business (it logs and ignores it under twistd;
    # a TLS reload reaches us over the bus, not as a signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if installGnetReactor is not None and "twisted.internet.reactor" not in sys.modules:
        # the epoll reactor without per-event logging context (see gnetcompat.reactor)
        installGnetReactor()
    try:
        payload: WorkerPayload = pickle.loads(sys.stdin.buffer.read())
        loadMain(payload["main"])
        handler = pickle.loads(payload["handler"])
    except BaseException as e:
        traceback.print_exc()
        text = f"{type(e).__name__}: {e}".replace("\n", "\\n")
        _send(f"fatal cannot load the handler: {text}")
        return 3
    missing, changed = checkMainGlobals(payload.get("mainGlobals") or {})
    if missing:  # the handler would raise NameError: say why, once, no traceback
        _send(f"fatal {mainGlobalsMessage(missing)}")
        return 3
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    minLevel = LogLevel.debug if payload["options"].LogLevel < 0 else LogLevel.info
    logPipe = _startLogging(minLevel)
    # the handler's stdlib logging records reach the parent's log too
    setupProgramLogging(minLevel)
    log = Logger(namespace="gnetcompat.worker")
    for name in changed if payload["index"] == 0 else ():  # one line, not one per worker
        log.warn(
            "the main script's global {name!r}, which the handler reads, has another value "
            "here than in the parent: it was changed after the script's top level ran (under "
            "'if __name__ == \"__main__\":'?); a worker process re-imports the script and sees "
            "only what its top level sets. Pass the value to the handler as an attribute.",
            name=name,
        )
    # the global reactor: imported only now, after installGnetReactor chose it
    from twisted.internet import reactor

    logPipe.clock = reactor
    worker = _Worker(reactor, payload, handler, _send)
    reactor.callWhenRunning(worker.start)
    reactor.run()
    logPipe.close()
    sys.stdout.flush()
    return worker.exitCode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
