# -*- test-case-name: tests.test_workers -*-
"""
Process workers (L{WithProcessWorkers}): one worker process per CPU (or
as many as asked), each with its own reactor and B{its own copy of the
handler}, supervised by the calling process.

This is the explicit parallel mode.  C{WithMulticore}/C{WithNumEventLoop}
alone keep gnet's meaning instead (event loops in one process sharing the
one handler: L{gnetcompat._engine.Engine.loops}).  C{Serve}/C{Run}/
C{Rotate}/L{EngineService} come here when C{WithProcessWorkers} asks for
workers.  The calling process (the I{parent}) never serves connections: it
binds the listeners, starts the workers with C{reactor.spawnProcess} (never
C{fork}: under twistd the reactor already exists), supervises them, routes
the engine-wide operations between them (L{gnetcompat._bus}) and stands for
the engine (L{MulticoreEngine}, an C{IEngine}).

A worker runs C{python -I -u -c BOOTSTRAP} (L{workerArgv}): isolated from
C{PYTHON*} variables, the user site directory and the working directory;
its C{sys.path} is exactly the parent's, handed over on its stdin.  A module
planted in the directory the service runs from (an C{http.py}, a
C{gnetcompat.py}) is never imported, unless the parent itself has that
directory on its path (C{python -c}, or a script living there).

Topology
========

- C{WithReusePort(True)} (tcp/udp): the parent binds the first socket of
  each address (so port 0 is resolved and bind errors are reported at once)
  and hands it to worker 0; every other worker, and every replacement,
  binds its own C{SO_REUSEPORT} socket to the same concrete port, and the
  kernel spreads connections (Linux: a hash of the 4-tuple).  The parent
  closes its copy once worker 0 has it: a listening socket nobody accepts on
  would swallow its share of connections.  C{Dup}/C{DupListener} on the
  parent then raise L{ErrUnsupportedOp}.
- Otherwise the parent binds one socket per address and every worker
  inherits it (spawnProcess C{childFDs}) and adopts it with
  C{reactor.adoptStreamPort}; the workers race to accept.  The parent keeps
  its copy (so C{Dup}/C{DupListener} work and replacements inherit it).
- UDP addresses force C{ReusePort} on (gnet's rule, spec §10.2): each worker
  has its own C{SO_REUSEPORT} datagram socket and the kernel picks the
  worker per flow.  Unix sockets force it off (gnet's rule too) and are
  always shared: one listening socket, bound by the parent, accepted on by
  every worker; the parent removes the socket file when it stops.

Load balancing: no C{WithLoadBalancing} mode is honoured exactly.  With a
shared socket whichever worker's accept wins takes the connection; with
reuse-port the kernel's hash decides.  The option is accepted; a value other
than the default C{RoundRobin} is logged once, at info, when the engine
starts.

Engine-wide state
=================

- C{CountConnections()} reads a shared memory block (a C{memfd}, or an
  unlinked temporary file elsewhere, C{mmap}ed by the parent and inherited by
  every worker): one native C{int64} slot per worker, 64 bytes apart (one
  cache line each, no false sharing).  A worker writes only its own slot, on
  every connection add/remove; reading is the sum of the slots, no round
  trip.  The parent zeroes the slot of a worker that died.  The sum is not a
  snapshot across workers (gnet's per-loop atomics are not either).
- C{OnBoot}/C{OnShutdown} run in every worker, B{not} in the parent.
- C{OnTick} runs in worker 0 only (when worker 0 is replaced, its
  replacement ticks), or in every worker with C{WithTickEveryWorker(True)}.
- The engine-wide API: C{Conn.Handle()}, C{Engine.AsyncWrite/AsyncWritev/
  Close/Wake(handle)}, C{Engine.Broadcast}, C{Engine.Conns()} (with
  C{WithConnRegistry(True)}) and C{Engine.Counter}; each worker has one
  stream socket to the parent (its fd 5), which routes (L{gnetcompat._bus}).
  A worker's handles carry its generation, so a replacement's connections
  are never reached with a dead worker's handles; the operations a dead
  worker had not acknowledged are answered C{ErrClosed}.
- TLS from files (C{WithTLS}): the parent reads and checks the files; a
  worker builds its context from the bytes the parent validated (in its
  start payload, and on L{MulticoreEngine.reloadCertificates} in a bus
  frame), never from the disk.
- A C{Shutdown} action or C{Stop()} in any worker sends C{shutdown} on the
  worker's control pipe (its fd 3); the parent then stops every other
  worker.  Stopping the parent (C{Stop()}, C{SIGTERM}/C{SIGINT} under C{Run}
  or twistd) sends C{SIGTERM} to every worker, which stops gracefully:
  listeners close, C{OnShutdown} runs, connections close through the normal
  close path (C{OnClose}), the worker exits 0.  A worker still alive
  C{ShutdownTimeout + 5} seconds later is killed.  A worker whose parent
  vanished stops by itself (C{PR_SET_PDEATHSIG} and a parent-pid check).
- Worker log events and anything it prints reach the parent's log (the
  engine's logger), one event per line, prefixed C{[worker N]}.
- Heartbeat: a serving worker writes C{beat} on its control pipe every
  C{heartbeatTimeout / 5} seconds (1 s by default) from its reactor.  The
  parent checks as often; a worker silent for more than
  C{heartbeatTimeout} (5 s) -- stopped (C{SIGSTOP}), or its reactor blocked
  by a handler -- is logged, killed with C{SIGKILL} and restarted like a
  crashed worker (back-off, crash limit).  A stopped worker is so found and
  replaced within C{heartbeatTimeout + heartbeatTimeout / 5} seconds plus
  the restart back-off; until then (reuse-port mode) the connections the
  kernel hashes to its socket wait in its accept queue, and are reset when
  it is killed.  A stall of the parent itself (its check ran late) never
  kills a worker: it reads the queued heartbeats first.

Supervision policy (L{SupervisionPolicy})
=========================================

A worker that exits while the engine is not stopping is logged (error, with
its exit status) and its slot restarted after a back-off: C{initialBackoff}
(0.5 s) doubled for every further crash of that slot within C{window}
seconds (60), at most C{maxBackoff} (30 s).  When one slot crashes
C{maxCrashes} times (5) within the window, the parent logs an error and stops
the whole engine; C{whenStopped()} (and C{Run}) then fail with
L{ErrWorkerFailed}.  A worker that cannot even load the handler (unpickling
fails, the main script raises) reports it and the engine stops at once
with that error; so does a worker whose main script calls C{Run} at import
time.

What a handler must satisfy
===========================

Each worker gets its own copy: the parent pickles the handler
(C{pickle.dumps(handler)}) and each worker unpickles it, so its class must be
importable by name (a module-level class) and its attributes picklable (no
lambdas, sockets, open files, reactors...; customise with
C{__getstate__}/C{__reduce__} if needed).  A class defined in the C{__main__}
of a script (C{python myserver.py}) or of a module run with C{python -m}
works: the worker re-runs that script or module under the name
C{__mp_main__} (as C{multiprocessing}'s spawn mode does), so the script's
top level must be import-safe and C{Run} must sit under
C{if __name__ == "__main__":}.  Classes from C{python -c}, an interactive
session or a function body cannot be recreated: L{serveMulticore} fails at
once with a C{TypeError} naming the handler.  State is not shared between
workers.  The C{Logger}/C{LogPath}, C{Reactor} and C{Clock} options stay in
the parent (workers log through it and use their own reactor and clock).
The parent must run its reactor (C{Run} does) for workers to be spawned and
supervised; a plain script calling C{Run} sees every log line, the
workers' included (L{gnetcompat._logging}).  A global of the main script
that the handler's methods read and that a worker's re-import lacks (set
under C{if __name__ == "__main__":}) stops the start with an error naming
it (L{mainGlobalsOf}, L{checkMainGlobals}); one whose value differs is
named in a warning.  A worker stopped on its own by a signal
(C{kill -TERM} of one worker) counts as an unexpected exit and is replaced:
stop the parent to stop them all.
"""

from __future__ import annotations

import collections
import dis
import hashlib
import json
import os
import pickle
import pickletools
import signal
import socket
import sys
import threading
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ReactorNotRunning
from twisted.internet.interfaces import IDelayedCall, IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from ._addr import ListenSpec, createListener, normalizeNetwork, ownsPath, splitHostPort
from ._bus import (
    PARENT,
    SLOT_STRIDE,
    BusProtocol,
    SharedCounter,
    SharedCounters,
    adoptBus,
    decode,
    encodeAck,
    encodeBroadcast,
    encodeOp,
    encodeRegistry,
    encodeTLSFiles,
)
from ._conn import ownBytes
from ._context import checkContext, contextTimeout
from ._engine import (
    OP_CLOSE,
    OP_NAMES,
    OP_WAKE,
    OP_WRITE,
    closeLogger,
    globalReactor,
    makeLogger,
    normalizeTopology,
    stopFromAnyThread,
)
from ._handle import MAX_COUNTERS, ConnHandle, Counter, HandleCallback, checkCounterName
from ._tls import fileConfigs, reloadConfigs, validatedFiles
from .errors import (
    ErrBusOverflow,
    ErrClosed,
    ErrEngineInShutdown,
    ErrInvalidNetworkAddress,
    ErrUnsupportedOp,
    GnetError,
)
from .interfaces import IEngine, IEventHandler
from .options import LoadBalancing, Options

__all__ = [
    "ErrWorkerFailed",
    "MulticoreEngine",
    "SupervisionPolicy",
    "serveMulticore",
]

#: set while a worker is loading the parent's main script: Run/Serve there is a bug
_loadingMain = False


class ErrWorkerFailed(GnetError):
    """The process-worker engine stopped because its workers kept failing."""

    message = "gnet: worker processes failed"


@dataclass(frozen=True)
class SupervisionPolicy:
    """
    When and how often dead workers are restarted (see the module docs).

    @ivar initialBackoff: seconds before the first restart of a slot.
    @ivar maxBackoff: the cap of the doubling back-off.
    @ivar maxCrashes: this many crashes of one slot within C{window}
        stop the engine with L{ErrWorkerFailed}.
    @ivar window: seconds over which crashes are counted.
    @ivar killGrace: seconds after C{ShutdownTimeout} before workers that
        ignore a stop are killed.
    @ivar heartbeatTimeout: a serving worker that sends no heartbeat for
        this many seconds (it is stopped, C{SIGSTOP}, or its reactor is
        blocked) is killed (C{SIGKILL}) and restarted like a crashed one;
        it beats every fifth of this.  C{0}: no heartbeat.
    """

    initialBackoff: float = 0.5
    maxBackoff: float = 30.0
    maxCrashes: int = 5
    window: float = 60.0
    killGrace: float = 5.0
    heartbeatTimeout: float = 5.0

    def __post_init__(self) -> None:
        t = self.heartbeatTimeout
        if not (t == 0 or MIN_HEARTBEAT <= t <= MAX_HEARTBEAT):
            raise ValueError(
                f"heartbeatTimeout must be 0 (off) or {MIN_HEARTBEAT:g}-{MAX_HEARTBEAT:g} "
                f"seconds, not {t!r}"
            )

    @property
    def heartbeatInterval(self) -> float:
        """Seconds between two heartbeats of a worker (0: none)."""
        return self.heartbeatTimeout / 5


#: bounds of L{SupervisionPolicy.heartbeatTimeout} (besides 0)
MIN_HEARTBEAT = 0.5
MAX_HEARTBEAT = 3600.0


DEFAULT_POLICY = SupervisionPolicy()


# -- the handler and the main module -----------------------------------------


def _mainReference() -> tuple[str, str] | None:
    """How a worker can re-create this process's C{__main__}, or None."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name and name != "__main__":
        return ("module", name[: -len(".__main__")] if name.endswith(".__main__") else name)
    path = getattr(main, "__file__", None)
    if path and os.path.isfile(path):
        return ("path", os.path.abspath(path))
    return None


def _referencesMain(data: bytes) -> bool:
    try:
        for _op, arg, _ in pickletools.genops(data):
            if arg == "__main__" or (isinstance(arg, str) and arg.startswith("__main__ ")):
                return True
    except Exception:
        return b"__main__" in data
    return False


def pickleHandler(handler: Any) -> tuple[bytes, tuple[str, str] | None]:
    """
    Pickle C{handler} for the workers; also say how to re-create C{__main__}
    when the pickle refers to it.

    @raise TypeError: the handler is not an event handler, cannot be pickled,
        or needs a C{__main__} that a worker cannot re-create.
    """
    if not IEventHandler.providedBy(handler):
        missing = [m for m in IEventHandler.names() if not callable(getattr(handler, m, None))]
        if missing:
            raise TypeError(f"handler {handler!r} lacks {', '.join(missing)}")
    cls = type(handler)
    what = f"handler {handler!r} (class {cls.__module__}.{cls.__qualname__})"
    try:
        data = pickle.dumps(handler, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        raise TypeError(
            f"WithProcessWorkers: {what} cannot be pickled for the worker processes: {e}. "
            "A process-worker handler must be an instance of a module-level class with "
            "picklable attributes (see gnetcompat._workers)."
        ) from e
    main = None
    if _referencesMain(data):
        main = _mainReference()
        if main is None:
            raise TypeError(
                f"WithProcessWorkers: {what} is defined in __main__ of a session that worker "
                "processes cannot re-import (python -c, interactive, or no script file); "
                "define the handler class in a module or a script file."
            )
    return data, main


def _globalNames(code: types.CodeType) -> set[str]:
    """The global names C{code} (and the code nested in it) reads."""
    names = set()
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
            names.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _globalNames(const)
    return names


def _fingerprint(value: Any) -> str | None:
    """A digest of a plain value (to compare it across processes), or None when not comparable."""
    if isinstance(value, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
        return None
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    return hashlib.sha256(data).hexdigest()


def mainGlobalsOf(handler: Any, main: tuple[str, str] | None) -> dict[str, str | None]:
    """
    The globals of C{__main__} that the methods of C{handler}'s classes
    defined there read, each with a L{_fingerprint} of its value: a worker
    re-imports the script as C{__mp_main__} (without running its
    C{if __name__ == "__main__":} block) and compares (L{checkMainGlobals}).
    Empty when the handler needs no C{__main__}.
    """
    module = sys.modules.get("__main__")
    if main is None or module is None:
        return {}
    names: set[str] = set()
    for cls in type(handler).__mro__:
        if cls.__module__ != "__main__":
            continue
        for value in vars(cls).values():
            func = getattr(value, "__func__", value)
            code = getattr(func, "__code__", None)
            if isinstance(code, types.CodeType):
                names |= _globalNames(code)
    found = vars(module)
    return {n: _fingerprint(found[n]) for n in sorted(names) if n in found}


def checkMainGlobals(expected: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """
    In a worker, after L{loadMain}: the names of L{mainGlobalsOf} that the
    re-imported script lacks (set only under C{if __name__ == "__main__":}:
    the handler would fail with C{NameError}), and those whose value
    differs from the parent's (changed there after import).
    """
    module = sys.modules.get("__main__")
    found = vars(module) if module is not None else {}
    missing = [n for n in expected if n not in found]
    changed = [
        n
        for n, fp in expected.items()
        if n in found and fp is not None and _fingerprint(found[n]) != fp
    ]
    return missing, changed


def mainGlobalsMessage(missing: list[str]) -> str:
    """The error of a worker whose re-imported main script lacks globals the handler reads."""
    names = ", ".join(repr(n) for n in missing)
    return (
        f"the handler reads the main script's global(s) {names}, which a worker process does "
        "not have: a worker re-imports the script without running its "
        "'if __name__ == \"__main__\":' block, where they are set. Define them at the "
        "script's top level, or pass them to the handler as attributes (they are copied "
        "to every worker)"
    )


def loadMain(main: tuple[str, str] | None) -> None:
    """In a worker: re-create the parent's C{__main__} as C{__mp_main__}."""
    global _loadingMain
    if main is None:
        return
    import runpy
    import types

    kind, where = main
    _loadingMain = True
    try:
        if kind == "module":
            ns = runpy.run_module(where, run_name="__mp_main__", alter_sys=False)
        else:
            ns = runpy.run_path(where, run_name="__mp_main__")
    finally:
        _loadingMain = False
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(ns)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module


# -- listeners ------------------------------------------------------------------


def _withPort(spec: ListenSpec, port: int) -> ListenSpec:
    host, _ = splitHostPort(spec.address)
    hostText = f"[{host}]" if ":" in host else host
    return ListenSpec(spec.text, spec.network, f"{hostText}:{port}")


class _ParentListener:
    """One address: the parent's socket (while held) and how workers get theirs."""

    def __init__(self, spec: ListenSpec, sock: socket.socket, family: int, shared: bool) -> None:
        self.spec = spec
        self.sock: socket.socket | None = sock
        self.family = family
        self.shared = shared
        name = sock.getsockname()
        #: what L{MulticoreEngine.addresses} lists: C{(host, port)} or a unix path
        self.address: tuple[str, int] | str
        if spec.network == "unix":
            self.address = spec.address
            self.bindSpec = spec
        else:
            self.address = (name[0], name[1])
            self.bindSpec = _withPort(spec, name[1])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# -- one worker process ---------------------------------------------------------

#: what a worker runs (C{python -I -c BOOTSTRAP}): the import path comes as the
#: first line of its stdin (JSON), then L{gnetcompat._worker_main} takes over
BOOTSTRAP = (
    "import sys, json; "
    "sys.path[:] = json.loads(sys.stdin.buffer.readline()); "
    "from gnetcompat._worker_main import main; "
    "sys.exit(main(sys.argv))"
)


def workerArgv(index: int) -> list[str]:
    """
    The command line of worker C{index}.  C{-I} (isolated mode): no
    C{PYTHON*} variable, no user site directory, and neither the working
    directory nor a script directory on the path, so nothing planted there
    runs; the parent then hands over its own C{sys.path}, which is all a
    worker can import from.  C{-u}: output reaches the parent's log at once
    (C{PYTHONUNBUFFERED} is ignored under C{-I}).  C{-O} and C{-B} follow
    the parent's flags.
    """
    flags = ["-I", "-u"]
    if sys.flags.optimize:
        flags.append("-" + "O" * sys.flags.optimize)
    if sys.flags.dont_write_bytecode:
        flags.append("-B")
    return [sys.executable, *flags, "-c", BOOTSTRAP, "gnetcompat-worker", str(index)]


_LEVEL_NAMES = {lvl.name: lvl for lvl in LogLevel.iterconstants()}


class WorkerPayload(TypedDict):
    """
    What the parent hands a worker on its stdin (pickled, after the import
    path): read by L{gnetcompat._worker_main}.
    """

    #: the worker's slot, and how many slots the engine has
    index: int
    workers: int
    #: the main script or module to re-run as C{__mp_main__} (L{_mainReference})
    main: tuple[str, str] | None
    #: the pickled handler (L{pickleHandler})
    handler: bytes
    specs: list[ListenSpec]
    #: the parent's options less what stays in the parent (logger, reactor, clock, workers)
    options: Options
    #: per address: its spec, the inherited descriptor (or None), the family,
    #: and what to bind when not inherited (reuse-port)
    listeners: list[tuple[ListenSpec, int | None, int, ListenSpec | None]]
    #: whether this worker runs C{OnTick}
    ticker: bool
    #: the slot's generation (in its connections' handles)
    generation: int
    #: L{mainGlobalsOf} the handler, checked by L{checkMainGlobals}
    mainGlobals: dict[str, str | None]
    #: seconds between heartbeats (0: none)
    heartbeat: float
    #: the bytes between two slots of the shared counters
    stride: int
    #: the parent's pid (a worker stops when its parent is gone)
    ppid: int


#: the child's fds: 0 payload, 1/2 output, 3 control, 4 counters, 5 bus, 6.. listeners
CONTROL_FD = 3
COUNTERS_FD = 4
BUS_FD = 5
FIRST_LISTENER_FD = 6


class _WorkerProtocol(ProcessProtocol):
    """The parent's end of one worker: its output, control lines and exit."""

    #: set by C{spawnProcess} before any callback runs (Twisted declares it Optional)
    transport: IProcessTransport

    def __init__(self, engine: MulticoreEngine, index: int) -> None:
        self.engine = engine
        self.index = index
        self.pid: int | None = None
        self.ready = False
        self.ended = False
        self.askedStop = False  # this worker asked for the engine-wide stop
        self.fatal: str | None = None
        self.hung = False  # killed for a missing heartbeat
        self.lastBeat = 0.0  # reactor time of the last heartbeat (or of "ready")
        self._partial: dict[int, bytes] = {1: b"", 2: b"", CONTROL_FD: b""}

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def childDataReceived(self, fd: int, data: bytes) -> None:
        buf = self._partial.get(fd, b"") + data
        *lines, rest = buf.split(b"\n")
        self._partial[fd] = rest
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if fd == CONTROL_FD:
                self.engine.controlLine(self, line)
            elif line:
                self._forward(fd, line)

    def _forward(self, fd: int, line: str) -> None:
        """
        One line of a worker's output into the engine's log: its stdout
        lines are C{LEVEL@NAMESPACE TEXT} (or C{LEVEL TEXT}), logged at that
        level in that namespace; anything else (stderr) as a warning.
        """
        level = LogLevel.warn if fd == 2 else LogLevel.info
        log = self.engine.log
        if fd == 1:
            head, _, tail = line.partition(" ")
            name, _, namespace = head.partition("@")
            if name in _LEVEL_NAMES:
                level, line = _LEVEL_NAMES[name], tail
                if namespace and namespace != log.namespace:
                    log = Logger(namespace=namespace, observer=log.observer)
        log.emit(level, "[worker {index}] {line}", index=self.index, line=line)

    def childConnectionLost(self, fd: int) -> None:
        rest = self._partial.get(fd)
        if rest:
            self._partial[fd] = b""
            self.childDataReceived(fd, b"\n")

    def processEnded(self, reason: Failure) -> None:
        self.ended = True
        for fd in (1, 2, CONTROL_FD):
            self.childConnectionLost(fd)
        self.engine.workerEnded(self, reason)

    def signal(self, name: str) -> None:
        if self.ended:
            return
        try:
            self.transport.signalProcess(name)
        except Exception:  # already gone
            pass


def _status(reason: Failure) -> str:
    v = reason.value
    code = getattr(v, "exitCode", None)
    sig = getattr(v, "signal", None)
    if sig:
        try:
            return f"killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    return f"exit status {code}"


# -- the parent-side engine -----------------------------------------------------


@implementer(IEngine)
class MulticoreEngine:
    """
    The parent's view of a process-worker engine: the listeners, the workers and
    their supervision.  It provides C{IEngine} (C{CountConnections} is
    engine-wide and read from shared memory); it never calls C{OnBoot} or
    C{OnShutdown} (each worker does).
    """

    def __init__(
        self,
        handler: Any,
        specs: Sequence[ListenSpec],
        options: Options,
        reactor: Any,
        policy: SupervisionPolicy,
    ) -> None:
        self.handler = handler
        self.specs = list(specs)
        self.options = normalizeTopology(self.specs, options.normalized())
        self.reactor = reactor
        self.log = makeLogger(self.options)
        self.policy = policy
        self.numWorkers = self.options.numWorkers() or 1
        #: the parent is no worker: engine-wide operations start here as PARENT
        self.workerIndex = PARENT
        self._payload, self._main = pickleHandler(handler)
        self._mainGlobals = mainGlobalsOf(handler, self._main)
        self._listeners: list[_ParentListener] = []
        self._workers: list[_WorkerProtocol | None] = [None] * self.numWorkers
        self._restarts: dict[int, IDelayedCall] = {}
        self._crashes: list[collections.deque[float]] = [
            collections.deque() for _ in range(self.numWorkers)
        ]
        self._counters: SharedCounters | None = None
        self._started: Deferred[MulticoreEngine] | None = Deferred()
        self._startedOnce: set[int] = set()
        self._stoppedWaiters: list[Deferred[None]] = []
        self._stopping = False
        self._stopped = False
        self._error: BaseException | None = None
        self._killCall: IDelayedCall | None = None
        self._thread: threading.Thread | None = None
        self._spawned = False
        self._heartbeatCheck: LoopingCall | None = None
        self._lastCheck = 0.0
        #: the bus (gnetcompat._bus): the parent's end of each worker's socket,
        #: each slot's generation (a replacement gets the next), the
        #: WithConnRegistry table, the acknowledgements a worker still owes
        #: (target -> {(sender, request)}), the parent's own pending callbacks
        self._buses: list[BusProtocol | None] = [None] * self.numWorkers
        self._generations = [0] * self.numWorkers
        self._registry: dict[tuple[int, int, int], ConnHandle] = {}
        self._owed: list[set[tuple[int, int]]] = [set() for _ in range(self.numWorkers)]
        self._pending: dict[int, tuple[HandleCallback, ConnHandle]] = {}
        self._nextReq = 0
        self._userCounters: dict[str, Counter] = {}

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "stopping" if self._stopping else "running"
        addrs = ", ".join(s.text for s in self.specs)
        return f"<MulticoreEngine [{addrs}] {self.numWorkers} workers {state}>"

    # -- IEngine ---------------------------------------------------------

    def Validate(self) -> None:
        """@raise ErrEngineInShutdown: the engine has shut down."""
        if self._stopped:
            raise ErrEngineInShutdown()

    def CountConnections(self) -> int:
        """Live connections over every worker (shared memory); -1 once stopped."""
        if self._stopped or self._counters is None:
            return -1
        return self._counters.total()

    def Dup(self) -> int:
        """
        Duplicate the only listener's descriptor (the parent's shared socket).

        @raise ErrUnsupportedOp: several listeners, or the parent holds none
            (reuse-port mode: each worker has its own).
        """
        self.Validate()
        if len(self._listeners) != 1 or self._listeners[0].sock is None:
            raise ErrUnsupportedOp()
        return os.dup(self._listeners[0].sock.fileno())

    def DupListener(self, network: str, addr: str) -> int:
        """
        Duplicate the parent's socket for this network and address text.

        @raise ErrInvalidNetworkAddress: no listener matches.
        @raise ErrUnsupportedOp: it matches a reuse-port listener (per worker).
        """
        self.Validate()
        net = normalizeNetwork(network)
        for lst in self._listeners:
            if lst.spec.normalizedNetwork == net and lst.spec.address == addr:
                if lst.sock is None:
                    raise ErrUnsupportedOp()
                return os.dup(lst.sock.fileno())
        raise ErrInvalidNetworkAddress()

    def Stop(self, ctx: Any = None, *, timeout: float | None = None) -> Deferred[None] | None:
        """
        gnet's C{Stop(ctx)}: stop every worker gracefully.  On the reactor
        thread: a Deferred that fires once all have exited.  From another
        thread: block until then.  C{ctx}'s deadline or C{timeout} seconds
        end the wait with C{TimeoutError} (see C{Engine.Stop}).

        @raise TypeError: C{ctx} is neither C{None} nor a C{Context}.
        @raise ErrEngineInShutdown: already stopping or stopped.
        """

        wait = contextTimeout(checkContext(ctx, "Engine.Stop"), timeout)
        self.Validate()
        if self._stopping:
            raise ErrEngineInShutdown()
        return stopFromAnyThread(self, self.onReactorThread(), wait)

    def onReactorThread(self) -> bool:
        """Whether the caller runs on the thread that started the workers (or none has)."""
        return self._thread is None or threading.current_thread() is self._thread

    def Register(self, ctx: Any) -> Any:
        """Not available in the parent: connections live in the workers."""
        raise ErrUnsupportedOp()

    # -- conveniences ----------------------------------------------------

    def whenStarted(self) -> Deferred[MulticoreEngine]:
        """
        The Deferred of the start: fires with this engine once every worker
        is ready, or fails with the reason they could not start.  Taken once,
        before C{start} runs (L{serveMulticore} returns it).
        """
        d = self._started
        assert d is not None, "whenStarted() after the start settled"
        return d

    def whenStopped(self) -> Deferred[None]:
        """
        Fires with C{None} once every worker has exited, or fails with
        L{ErrWorkerFailed} when the supervision policy gave up.
        """
        d: Deferred[None] = Deferred()
        if self._stopped:
            if self._error is not None:
                d.errback(self._error)
            else:
                d.callback(None)
        else:
            self._stoppedWaiters.append(d)
        return d

    @property
    def addresses(self) -> list[tuple[str, int] | str]:
        """The bound addresses: C{(host, port)} (port 0 resolved) or a unix path."""
        return [lst.address for lst in self._listeners]

    @property
    def stopping(self) -> bool:
        """True once shutdown has begun."""
        return self._stopping

    @property
    def stopped(self) -> bool:
        """True once every worker has exited."""
        return self._stopped

    @property
    def error(self) -> BaseException | None:
        """Why the engine stopped, when it was not asked to."""
        return self._error

    def workerPids(self) -> list[int | None]:
        """The pid of each worker slot (None while it is being restarted)."""
        return [w.pid if w is not None and not w.ended else None for w in self._workers]

    def reloadCertificates(self) -> list[str]:
        """
        gnetcompat: load the TLS certificate and key files again, for every
        worker (on the reactor thread).  The files are read and checked
        here, in the parent, without ever blocking; the bytes that passed
        are sent to every worker over the bus (L{gnetcompat._bus}), and
        each builds its new context from those bytes, never from the disk:
        a file changed again after the check cannot reach a worker
        unchecked.  A worker that cannot apply them logs one line and keeps
        its certificate; a replacement worker starts with them.  New
        connections get the new certificate, open ones keep theirs.  A file
        that cannot be used leaves its listener's current certificate in
        place and is logged; the messages are returned (an empty list:
        reloaded, or nothing to reload).
        """
        configs = fileConfigs(self.options.TLS)
        errors = reloadConfigs(configs)
        for e in errors:
            self.log.error("TLS reload failed, keeping the current certificate: {error}", error=e)
        if len(errors) == len(configs):  # nothing to reload, or nothing reloaded
            return errors
        frame = encodeTLSFiles(validatedFiles(configs))
        sent = 0
        for index, bus in enumerate(self._buses):
            if bus is None:  # being replaced: the replacement starts with these files
                continue
            if bus.send(frame):
                sent += 1
            else:
                self.log.error(
                    "worker {index}: the checked TLS files could not be sent to it (its bus "
                    "is full); it keeps its current certificate until it is replaced",
                    index=index,
                )
        self.log.info(
            "TLS certificates checked; their bytes sent to {sent} of {n} workers over the bus",
            sent=sent,
            n=self.numWorkers,
        )
        return errors

    # -- engine-wide operations (the parent's side of Engine's API) -------

    def AsyncWrite(
        self, handle: ConnHandle, data: Any, callback: HandleCallback | None = None
    ) -> None:
        """C{Engine.AsyncWrite} from the parent: to the worker owning C{handle}."""
        self._submit(OP_WRITE, handle, ownBytes(data, "Engine.AsyncWrite"), callback)

    def AsyncWritev(
        self, handle: ConnHandle, bufs: Iterable[Any], callback: HandleCallback | None = None
    ) -> None:
        """C{Engine.AsyncWritev} from the parent."""
        data = b"".join(ownBytes(b, "Engine.AsyncWritev") for b in bufs)
        self._submit(OP_WRITE, handle, data, callback)

    def Close(self, handle: ConnHandle, callback: HandleCallback | None = None) -> None:
        """C{Engine.Close} from the parent."""
        self._submit(OP_CLOSE, handle, b"", callback)

    def Wake(self, handle: ConnHandle, callback: HandleCallback | None = None) -> None:
        """C{Engine.Wake} from the parent."""
        self._submit(OP_WAKE, handle, b"", callback)

    def Broadcast(self, data: Any, exclude: ConnHandle | None = None) -> None:
        """C{Engine.Broadcast} from the parent: to every worker's connections."""
        data = ownBytes(data, "Engine.Broadcast")
        if exclude is not None and not isinstance(exclude, ConnHandle):
            raise TypeError(f"Engine.Broadcast: exclude must be a ConnHandle, got {exclude!r}")
        if self._stopped:
            raise ErrEngineInShutdown()
        frame = encodeBroadcast(data, exclude)
        self.reactor.callFromThread(self._sendAll, frame, None)

    def Conns(self) -> list[ConnHandle]:
        """
        The handles of every worker's connections (needs
        L{WithConnRegistry}(True)); on the reactor thread.

        @raise ErrUnsupportedOp: without the registry.
        """
        if not self.options.ConnRegistry:
            raise ErrUnsupportedOp(
                "gnetcompat: Engine.Conns() across worker processes needs WithConnRegistry(True)"
            )
        return list(self._registry.values())

    def Counter(self, name: str) -> Counter:
        """C{Engine.Counter}: the parent adds to a column of its own."""
        name = checkCounterName(name)
        c = self._userCounters.get(name)
        if c is None:
            if self._counters is None:
                raise ErrEngineInShutdown()
            if len(self._userCounters) >= MAX_COUNTERS:
                raise ValueError(f"Engine.Counter: at most {MAX_COUNTERS} counters per engine")
            c = SharedCounter(self._counters, name, self._counters.parentColumn)
            self._userCounters[name] = c
        return c

    def _submit(
        self, op: int, handle: object, payload: bytes, callback: HandleCallback | None
    ) -> None:
        if not isinstance(handle, ConnHandle):
            raise TypeError(
                f"Engine.{OP_NAMES[op]}: expected a ConnHandle (from c.Handle()), got {handle!r}"
            )
        if self._stopped:
            raise ErrEngineInShutdown()
        self.reactor.callFromThread(self._submitNow, op, handle, payload, callback)

    def _submitNow(
        self, op: int, handle: ConnHandle, payload: bytes, callback: HandleCallback | None
    ) -> None:
        req = 0
        if callback is not None:
            self._nextReq += 1
            req = self._nextReq
        target = handle.worker
        bus = self._buses[target] if 0 <= target < self.numWorkers else None
        err: BaseException | None = None
        if bus is None or self._generations[target] != handle.generation:
            err = ErrClosed()
        elif not bus.send(encodeOp(op, PARENT, handle, req, payload)):
            err = ErrBusOverflow()
        elif callback is not None:  # (then req is its request number)
            self._pending[req] = (callback, handle)
            self._owed[target].add((PARENT, req))
            return
        if callback is not None:
            self._callback(callback, handle, err)

    def _callback(
        self, callback: HandleCallback, handle: ConnHandle, err: BaseException | None
    ) -> None:
        try:
            callback(handle, err)
        except Exception:
            self.log.failure("callback {cb!r} raised", cb=callback)

    # -- the bus router -----------------------------------------------------

    def _attachBus(self, index: int, sock: socket.socket) -> None:
        """Adopt the parent's end of worker C{index}'s bus socket; replay the registry to it."""
        proto = BusProtocol(
            lambda frame: self._busFrame(index, proto, frame), lambda: self._busLost(index, proto)
        )
        proto.name = f"bus to worker {index}"
        try:
            adoptBus(self.reactor, sock.fileno(), proto)
        finally:
            sock.close()
        self._buses[index] = proto
        if self.options.ConnRegistry:
            for h in self._registry.values():
                proto.send(encodeRegistry(True, h))

    def _detachBus(self, index: int) -> None:
        """Worker C{index} is gone: fail what it owed, forget its connections, close its socket."""
        proto, self._buses[index] = self._buses[index], None
        owed, self._owed[index] = self._owed[index], set()
        for sender, req in owed:
            self._routeAck(sender, req, ErrClosed())
        gone = [k for k in self._registry if k[0] == index]
        for k in gone:
            h = self._registry.pop(k)
            self._sendAll(encodeRegistry(False, h), index)
        if proto is not None and proto.transport is not None:
            proto.transport.loseConnection()

    def _busLost(self, index: int, proto: BusProtocol) -> None:
        if self._buses[index] is proto:
            self._detachBus(index)

    def _sendAll(self, frame: bytes, skip: int | None) -> None:
        for i, bus in enumerate(self._buses):
            if bus is not None and i != skip:
                bus.send(frame)

    def _routeAck(self, sender: int, req: int, err: BaseException | None) -> None:
        if sender == PARENT:
            entry = self._pending.pop(req, None)
            if entry is not None:
                self._callback(entry[0], entry[1], err)
            return
        bus = self._buses[sender] if 0 <= sender < self.numWorkers else None
        if bus is not None:
            bus.send(encodeAck(sender, req, err))

    def _busFrame(self, index: int, proto: BusProtocol, frame: bytes) -> None:
        """Route a frame from worker C{index} (see L{gnetcompat._bus})."""
        if self._buses[index] is not proto:
            return
        try:
            msg = decode(frame)
        except ValueError as e:
            self.log.error("worker {index}: bad bus frame: {error}", index=index, error=str(e))
            return
        kind = msg[0]
        if kind == "B":
            self._sendAll(frame, index)
        elif kind == "O":
            _, op, target, handle, req, payload = msg
            bus = self._buses[target] if 0 <= target < self.numWorkers else None
            err: BaseException | None = None
            if bus is None or self._generations[target] != handle.generation:
                err = ErrClosed()
            elif not bus.send(encodeOp(op, index, handle, req, payload)):
                err = ErrBusOverflow()
            elif req:
                self._owed[target].add((index, req))
            if err is not None and req:
                proto.send(encodeAck(index, req, err))
        elif kind == "A":
            _, sender, req, err = msg
            self._owed[index].discard((sender, req))
            self._routeAck(sender, req, err)
        elif kind in ("N", "X"):
            h = msg[1]
            if h.worker != index:  # a worker announces only its own connections
                return
            key = (h.worker, h.generation, h.id)
            if kind == "N":
                self._registry[key] = h
            elif self._registry.pop(key, None) is None:
                return
            self._sendAll(frame, index)

    # -- start -----------------------------------------------------------

    def bind(self) -> None:
        """Bind every listener in the parent (errors raise here)."""
        try:
            for spec in self.specs:
                sock, family = createListener(spec, self.options)
                # normalizeTopology turned ReusePort off for unix and fd:// addresses
                shared = not self.options.ReusePort
                self._listeners.append(_ParentListener(spec, sock, family, shared))
            self._counters = SharedCounters(self.numWorkers)
        except BaseException:
            self._closeListeners()
            raise

    def start(self) -> Deferred[MulticoreEngine]:
        """Spawn the workers; fires with C{self} once each has booted."""
        assert self._started is not None
        d = self._started
        self._thread = threading.current_thread()
        lb = self.options.LB
        if lb != LoadBalancing.RoundRobin:
            self.log.info(
                "WithLoadBalancing({lb}) is not applied to process workers: the kernel spreads "
                "connections over the worker processes",
                lb=LoadBalancing(lb).name,
            )
        for i in range(self.numWorkers):
            if self._stopping:
                break
            self._spawn(i)
        self._spawned = True
        if not self._stopping:
            self._startHeartbeatCheck()
        # reuse-port: worker 0 inherited the first sockets; our copies would steal connections
        for lst in self._listeners:
            if not lst.shared:
                lst.close()
        if self._stopping and not any(self._alive()):
            self._finish()
        return d

    def _payloadFor(self, index: int, inherit: dict[int, int]) -> bytes:
        # one event loop per worker process; the parent keeps the logger and clock
        opts = replace(
            self.options,
            Logger=None,
            LogPath="",
            Reactor=None,
            Clock=None,
            Multicore=False,
            NumEventLoop=0,
            ProcessWorkers=0,
        )
        listeners: list[tuple[ListenSpec, int | None, int, ListenSpec | None]] = []
        for n, lst in enumerate(self._listeners):
            fd = FIRST_LISTENER_FD + n
            if fd in inherit:
                listeners.append((lst.spec, fd, lst.family, None))
            else:
                listeners.append((lst.spec, None, lst.family, lst.bindSpec))
        payload: WorkerPayload = {
            "index": index,
            "workers": self.numWorkers,
            "main": self._main,
            "handler": self._payload,
            "specs": self.specs,
            "options": opts,
            "listeners": listeners,
            "ticker": self.options.Ticker and (index == 0 or self.options.TickEveryWorker),
            "generation": self._generations[index],
            "mainGlobals": self._mainGlobals,
            "heartbeat": self.policy.heartbeatInterval,
            "stride": SLOT_STRIDE,
            "ppid": os.getpid(),
        }
        return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        if index in self._startedOnce:
            self._sayIfTLSFilesChanged(index)
        assert self._counters is not None
        self._counters.set(index, 0)
        self._generations[index] += 1
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        childFDs: dict[int, Any] = {
            0: "w",
            1: "r",
            2: "r",
            CONTROL_FD: "r",
            COUNTERS_FD: self._counters.fd,
            BUS_FD: theirs.fileno(),
        }
        inherit: dict[int, int] = {}
        for n, lst in enumerate(self._listeners):
            # reuse-port: only the first worker 0 takes the parent's socket; every
            # other worker (and every replacement) binds its own below
            if lst.sock is not None and (lst.shared or (index == 0 and not self._spawned)):
                inherit[FIRST_LISTENER_FD + n] = lst.sock.fileno()
        childFDs.update(inherit)
        proto = _WorkerProtocol(self, index)
        self._workers[index] = proto
        try:
            self.reactor.spawnProcess(
                proto, sys.executable, workerArgv(index), env=dict(os.environ), childFDs=childFDs
            )
        except Exception as e:
            ours.close()
            self._workers[index] = None
            self.log.failure("could not start worker {index}", index=index)
            self._fail(ErrWorkerFailed(f"gnet: could not start worker {index}: {e}"))
            return
        finally:
            theirs.close()
        self._attachBus(index, ours)
        # the bootstrap's first line: the import path, exactly the parent's
        path = [os.fspath(p) for p in sys.path if isinstance(p, (str, os.PathLike))]
        proto.transport.write(json.dumps(path).encode("ascii") + b"\n")
        proto.transport.write(self._payloadFor(index, inherit))
        proto.transport.closeStdin()

    def _sayIfTLSFilesChanged(self, index: int) -> None:
        """
        A replacement worker serves the TLS files' bytes validated last (in
        its payload), never what is on disk now: say so, once per
        replacement, when the disk differs (a renewal in progress, or a
        broken file that the next C{SIGHUP} would refuse).
        """
        stale: list[str] = []
        for cfg in fileConfigs(self.options.TLS):
            stale += [path for path in cfg.changedOnDisk() if path not in stale]
        if stale:
            self.log.warn(
                "worker {index} restarts with the TLS certificate validated last: {files} "
                "changed on disk since (SIGHUP loads them once they are valid)",
                index=index,
                files=", ".join(stale),
            )

    def _alive(self) -> list[_WorkerProtocol]:
        return [w for w in self._workers if w is not None and not w.ended]

    # -- control and supervision ----------------------------------------

    def controlLine(self, worker: _WorkerProtocol, line: str) -> None:
        cmd, _, arg = line.partition(" ")
        if cmd == "beat":
            worker.lastBeat = self.reactor.seconds()
        elif cmd == "ready":
            worker.ready = True
            worker.lastBeat = self.reactor.seconds()
            first = worker.index not in self._startedOnce
            self._startedOnce.add(worker.index)
            if not first:
                self.log.info(
                    "worker {index} restarted (pid {pid})", index=worker.index, pid=worker.pid
                )
            elif len(self._startedOnce) == self.numWorkers and self._started is not None:
                d, self._started = self._started, None
                o = self.options
                self.log.info(
                    "process workers: {n} workers serving {addrs}, each with its own copy "
                    "of the handler (its state is not shared; engine-wide: CountConnections, "
                    "Counter, Broadcast, AsyncWrite/Close by ConnHandle{conns}); OnTick runs in "
                    "{tick}",
                    n=self.numWorkers,
                    addrs=", ".join(s.text for s in self.specs),
                    conns=", Conns" if o.ConnRegistry else "",
                    tick=(
                        "no worker (WithTicker is off)"
                        if not o.Ticker
                        else "every worker"
                        if o.TickEveryWorker
                        else "worker 0 only"
                    ),
                )
                d.callback(self)
        elif cmd == "shutdown":
            worker.askedStop = True
            self.requestShutdown(fromLoop=True)
        elif cmd == "fatal":
            worker.fatal = arg.replace("\\n", "\n")
        else:
            self.log.warn(
                "worker {index}: unknown control line {line!r}", index=worker.index, line=line
            )

    def workerEnded(self, worker: _WorkerProtocol, reason: Failure) -> None:
        index = worker.index
        if self._counters is not None:
            self._counters.set(index, 0)
        if self._workers[index] is worker:
            self._workers[index] = None
            self._detachBus(index)
        status = _status(reason)
        if self._stopping:
            lvl = LogLevel.info if reason.check(ProcessDone) else LogLevel.warn  # type: ignore[no-untyped-call]  # Twisted: untyped
            self.log.emit(
                lvl,
                "worker {index} (pid {pid}) exited: {status}",
                index=index,
                pid=worker.pid,
                status=status,
            )
            if not self._alive():
                self._finish()
            return
        if worker.fatal is not None:
            self.log.error(
                "worker {index} (pid {pid}) failed to start: {error}",
                index=index,
                pid=worker.pid,
                error=worker.fatal,
            )
            self._fail(ErrWorkerFailed(f"gnet: worker {index} failed to start: {worker.fatal}"))
            return
        self.log.error(
            "worker {index} (pid {pid}) died unexpectedly: {status}",
            index=index,
            pid=worker.pid,
            status=status,
        )
        now = self.reactor.seconds()
        crashes = self._crashes[index]
        crashes.append(now)
        while crashes and crashes[0] < now - self.policy.window:
            crashes.popleft()
        p = self.policy
        if len(crashes) >= p.maxCrashes:
            msg = (
                f"gnet: worker {index} crashed {len(crashes)} times within {p.window:g} s "
                f"(last: {status}); stopping the engine"
            )
            self.log.error("{msg}", msg=msg)
            self._fail(ErrWorkerFailed(msg))
            return
        delay = min(p.initialBackoff * 2 ** (len(crashes) - 1), p.maxBackoff)
        self.log.info("restarting worker {index} in {delay:.2f} s", index=index, delay=delay)
        self._restarts[index] = self.reactor.callLater(delay, self._spawn, index)

    def _startHeartbeatCheck(self) -> None:
        interval = self.policy.heartbeatInterval
        if not interval:
            return
        self._lastCheck = self.reactor.seconds()
        self._heartbeatCheck = LoopingCall(self._checkHeartbeats)
        self._heartbeatCheck.clock = self.reactor
        self._heartbeatCheck.start(interval, now=False)

    def _stopHeartbeatCheck(self) -> None:
        if self._heartbeatCheck is not None and self._heartbeatCheck.running:
            self._heartbeatCheck.stop()
        self._heartbeatCheck = None

    def _checkHeartbeats(self) -> None:
        """Kill every serving worker silent for longer than the heartbeat timeout."""
        now = self.reactor.seconds()
        late, self._lastCheck = now - self._lastCheck, now
        timeout = self.policy.heartbeatTimeout
        if self._stopping or late > 2 * self.policy.heartbeatInterval:
            # this process itself was stalled: read the queued heartbeats first
            return
        for w in self._alive():
            silence = now - w.lastBeat
            if w.ready and not w.hung and silence > timeout:
                w.hung = True
                self.log.error(
                    "worker {index} (pid {pid}) sent no heartbeat for {silence:.1f} s (limit "
                    "{timeout:g} s): stopped or blocked; killing it",
                    index=w.index,
                    pid=w.pid,
                    silence=silence,
                    timeout=timeout,
                )
                w.signal("KILL")

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self.requestShutdown(fromLoop=False)

    def requestShutdown(self, fromLoop: bool) -> None:
        """Stop every worker (idempotent); C{fromLoop}: a worker asked for it."""
        if self._stopping or self._stopped:
            return
        self._stopping = True
        self._stopHeartbeatCheck()
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        alive = self._alive()
        for w in alive:
            if not w.askedStop:
                w.signal("TERM")
        if not alive:
            if self._spawned:
                self._finish()
            return
        self._killCall = self.reactor.callLater(
            self.options.ShutdownTimeout + self.policy.killGrace, self._killAll
        )

    def _killAll(self) -> None:
        self._killCall = None
        for w in self._alive():
            self.log.warn(
                "worker {index} (pid {pid}) did not stop; killing it", index=w.index, pid=w.pid
            )
            w.signal("KILL")

    def _closeListeners(self) -> None:
        for lst in self._listeners:
            lst.close()
            if ownsPath(lst.spec):
                try:
                    os.unlink(lst.spec.address)
                except OSError:
                    pass

    def _finish(self) -> None:
        if self._stopped:
            return
        if self._killCall is not None and self._killCall.active():
            self._killCall.cancel()
        self._killCall = None
        self._stopHeartbeatCheck()
        self._closeListeners()
        for index in range(self.numWorkers):
            self._detachBus(index)
        if self._counters is not None:
            self._counters.close()
        self._stopping = self._stopped = True
        closeLogger(self.log)  # before the waiters: they may end the program
        if self._started is not None:
            d, self._started = self._started, None
            if self._error is not None:
                d.errback(self._error)
            else:
                d.callback(self)
        waiters, self._stoppedWaiters = self._stoppedWaiters, []
        for w in waiters:
            if self._error is not None:
                w.errback(self._error)
            else:
                w.callback(None)


def serveMulticore(
    handler: Any,
    specs: Sequence[ListenSpec],
    options: Options,
    reactor: Any = None,
    policy: SupervisionPolicy | None = None,
) -> Deferred[MulticoreEngine]:
    """
    Start a process-worker engine: bind in this process, spawn
    C{options.numLoops()} workers.  Returns a Deferred firing with the
    L{MulticoreEngine} once every worker has booted (already stopped if the
    workers stopped it during boot), or failing with the setup error (a
    handler that cannot be sent to workers: C{TypeError}; bad option; bind
    failure; L{ErrWorkerFailed} when the workers cannot start).

    Binding happens now; the workers are spawned once C{reactor} runs.
    """
    if _loadingMain:
        return defer.fail(
            RuntimeError(
                "gnetcompat: the main script starts a process-worker engine when a worker imports "
                "it; put Run() under 'if __name__ == \"__main__\":'"
            )
        )
    try:
        if reactor is None:
            reactor = options.Reactor or globalReactor()
        eng = MulticoreEngine(handler, specs, options, reactor, policy or DEFAULT_POLICY)
        eng.bind()
    except Exception:
        return defer.fail()
    started = eng.whenStarted()
    reactor.callWhenRunning(eng.start)
    return started


def stopReactor(reactor: Any) -> None:
    """C{reactor.stop()} unless it is already stopping."""
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass
