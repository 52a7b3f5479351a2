"""
Helpers for the real-process tests: the one spawner (L{spawn}: start a
process with C{reactor.spawnProcess}, collect its output, wait (bounded) for
a pattern or its exit, kill it at cleanup) and the one C{twistd} command
line (L{twistdArgv}); L{spawnTwistd} joins them.

Every wait takes a timeout and fails with the output seen so far, so a
hung or crashed server shows why.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

#: The line OnBoot logs once the echo server listens.
LISTENING = re.compile(r"is listening on")


def freePort(host: str = "127.0.0.1") -> int:
    """
    A TCP port that was free a moment ago (bound with port 0, then closed).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def twistdArgv(*args: str, logfile: str = "-", twistd: str | None = None) -> list[str]:
    """
    The argv of C{twistd -n --pidfile= --logfile=LOGFILE ARGS}: in the
    foreground, no pid file, the log on stdout unless C{logfile} names a
    file.

    @param args: the plugin and its options (C{"gnetecho", "--port", "9080"}),
        or C{"-y", "app.tac"}.
    @param twistd: the C{twistd} script to run (another virtualenv's); by
        default this interpreter's, run with this interpreter.
    """
    if twistd is not None:
        command = [twistd]
    else:
        script = os.path.join(os.path.dirname(sys.executable), "twistd")
        if os.path.exists(script):
            command = [sys.executable, script]
        else:
            command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    return [*command, "-n", "--pidfile=", f"--logfile={logfile}", *args]


class ProcessFailed(Exception):  # noqa: N818  (a test's outcome, named for what happened)
    """
    The process ended, or a wait timed out, before the awaited output.
    """


class TwistdProcess(ProcessProtocol):
    """
    A spawned process (C{twistd}, C{kosoku}, C{wsload}, a script): its
    output (stdout and stderr together) and exit.

    @ivar output: everything it printed so far, decoded.
    @ivar errOutput: what of it came on its standard error.
    @ivar exitCode: its exit code once ended (C{None} before, or if killed
        by a signal; see L{exitSignal}).
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.output = ""
        self.errOutput = ""
        self.exitCode: int | None = None
        self.exitSignal: int | None = None
        self.exited = False
        self._waiters: list[tuple[re.Pattern[str], int, Deferred]] = []
        self._endWaiters: list[Deferred] = []

    @property
    def pid(self) -> int:
        """The process id (while it runs)."""
        return self.transport.pid

    # -- ProcessProtocol ----------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        for waiter in list(self._waiters):
            pattern, start, d = waiter
            if pattern.search(self.output, start):
                self._waiters.remove(waiter)
                d.callback(self.output)

    def errReceived(self, data: bytes) -> None:
        self.errOutput += data.decode("utf-8", "replace")
        self.outReceived(data)

    def processEnded(self, reason: Failure) -> None:
        self.exited = True
        self.exitCode = getattr(reason.value, "exitCode", None)
        self.exitSignal = getattr(reason.value, "signal", None)
        waiters, self._waiters = self._waiters, []
        for pattern, _, d in waiters:
            d.errback(
                ProcessFailed(
                    f"process exited (code {self.exitCode}, signal {self.exitSignal}) "
                    f"before printing {pattern.pattern!r}; output:\n{self.output}"
                )
            )
        ends, self._endWaiters = self._endWaiters, []
        for d in ends:
            d.callback(self.exitCode)

    # -- waiting ----------------------------------------------------------

    def waitFor(self, pattern: str | re.Pattern[str], timeout: float, start: int = 0) -> Deferred:
        """
        Fire with the output once it matches C{pattern} (from offset
        C{start}: C{len(output)} before an action waits for what the action
        logs); fail with L{ProcessFailed} if the process exits first or
        after C{timeout} s.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        if rx.search(self.output, start):
            return defer.succeed(self.output)
        if self.exited:
            return defer.fail(ProcessFailed(f"process already exited; output:\n{self.output}"))
        d: Deferred = Deferred()
        self._waiters.append((rx, start, d))
        return self._bounded(d, timeout, f"waiting for {rx.pattern!r}")

    def waitForExit(self, timeout: float) -> Deferred:
        """
        Fire with the exit code once the process ended (bounded).
        """
        if self.exited:
            return defer.succeed(self.exitCode)
        d: Deferred = Deferred()
        self._endWaiters.append(d)
        return self._bounded(d, timeout, "waiting for the process to exit")

    def _bounded(self, d: Deferred, timeout: float, what: str) -> Deferred:
        def timedOut(f: Failure) -> Failure:
            if f.check(defer.TimeoutError, defer.CancelledError):
                raise ProcessFailed(f"timed out after {timeout} s {what}; output:\n{self.output}")
            return f

        d.addTimeout(timeout, self.reactor)
        return d.addErrback(timedOut)

    # -- stopping ---------------------------------------------------------

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """
        Send C{sig} if the process is still running.
        """
        if not self.exited and self.transport is not None:
            try:
                self.transport.signalProcess(sig)
            except Exception:
                pass

    async def terminate(self, timeout: float = 10.0) -> None:
        """
        SIGTERM, wait up to C{timeout} s for the exit (then SIGKILL and
        raise L{ProcessFailed}).
        """
        self.signal(signal.SIGTERM)
        try:
            await self.waitForExit(timeout)
        except ProcessFailed:
            self.signal(signal.SIGKILL)
            await self.waitForExit(5)
            raise

    @property
    def endedCleanlyOnTerm(self) -> bool:
        """
        Whether it ended as a twistd program does after a handled SIGTERM:
        exit code 0 (what C{twistd gnetecho} does after a graceful stop:
        gnetcompat's EngineService clears the signal), or "killed by
        SIGTERM" (Twisted 22.10+ re-raises the signal once shut down,
        which other twistd programs keep doing).
        """
        return (self.exitCode, self.exitSignal) in ((0, None), (None, signal.SIGTERM))


def spawn(
    testCase: Any,
    argv: list[str],
    reactor: Any = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    inheritFDs: dict[int, int] | None = None,
    protocol: TwistdProcess | None = None,
) -> TwistdProcess:
    """
    Start C{argv} (output collected, stdout and stderr together) in C{cwd}
    (a fresh temporary directory by default) and make sure C{testCase}
    kills it (SIGKILL, bounded wait) during cleanup if it is still running.

    @param testCase: a trial C{TestCase} (for C{addCleanup} and C{mktemp}).
    @param env: extra environment variables.
    @param inheritFDs: child descriptor -> our descriptor, passed on (as
        systemd passes activated sockets from descriptor 3).
    @param protocol: the L{TwistdProcess} (a subclass's instance) to run it
        with; a new one by default.
    @return: the process's L{TwistdProcess}.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    if cwd is None:
        cwd = testCase.mktemp()
        os.makedirs(cwd)
    proto = protocol if protocol is not None else TwistdProcess(reactor)
    environ = dict(os.environ)
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(env or {})
    childFDs: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
    childFDs.update(inheritFDs or {})
    reactor.spawnProcess(proto, argv[0], argv, env=environ, path=cwd, childFDs=childFDs)

    def cleanup() -> Deferred | None:
        if proto.exited:
            return None
        proto.signal(signal.SIGKILL)
        return proto.waitForExit(10).addErrback(lambda _: None)

    testCase.addCleanup(cleanup)
    return proto


def spawnTwistd(
    testCase: Any,
    args: list[str],
    reactor: Any = None,
    cwd: str | None = None,
    activate: list[socket.socket] | None = None,
    env: dict[str, str] | None = None,
    logfile: str = "-",
    inheritFDs: dict[int, int] | None = None,
) -> TwistdProcess:
    """
    Start C{twistd -n --pidfile= --logfile=LOGFILE <args>} (L{twistdArgv})
    with L{spawn}.

    @param args: the plugin name and its options, e.g. C{["gnetecho", "--port", "9080"]}.
    @param activate: listening sockets to pass as systemd's socket
        activation does: from descriptor 3 on, with C{LISTEN_FDS},
        C{LISTEN_FDNAMES} (C{s0}, C{s1}, ...) and C{LISTEN_PID} (set by a
        shell that then C{exec}s twistd, so it is twistd's own pid).
    @param env: extra environment variables.
    @param logfile: where twistd logs (C{-}: stdout, collected).
    @param inheritFDs: more descriptors to pass on (child descriptor -> ours).
    """
    argv = twistdArgv(*args, logfile=logfile)
    env = dict(env or {})
    fds: dict[int, int] = dict(inheritFDs or {})
    if activate:
        argv = ["/bin/sh", "-c", 'export LISTEN_PID=$$; exec "$@"', "sh", *argv]
        env["LISTEN_FDS"] = str(len(activate))
        env["LISTEN_FDNAMES"] = ":".join(f"s{i}" for i in range(len(activate)))
        fds.update({3 + i: s.fileno() for i, s in enumerate(activate)})
    return spawn(testCase, argv, reactor, cwd, env=env, inheritFDs=fds)
