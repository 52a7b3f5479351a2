"""
A L{gnetcompat.Client} in a plain script (issue 18 item 7): with no reactor
running, C{Start()} runs the global reactor in a thread it owns, C{Dial}
blocks and returns the Conn, C{Stop()} ends that reactor so the script
exits cleanly; a later C{gnet.Run} serves on that reactor.  The scripts run
as real subprocesses on loopback; the reactor thread itself is also tested
in-process on a private reactor, and the dial errors on a memory reactor.

Integration tier (subprocesses, sockets); every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.testing import MemoryReactorClock
from twisted.python import threadable
from twisted.trial.unittest import SynchronousTestCase, TestCase

import gnetcompat as gnet
from gnetcompat.client import _ReactorThread
from gnetcompat.errors import ErrInvalidNetworkAddress, ErrUnsupportedProtocol

from ._procs import freePort, spawn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: gnet's plain client program: a blocking echo server on a plain socket,
#: then Start, Dial, AsyncWrite, the reply in OnTraffic, Stop
CLIENT_SCRIPT = """
import socket, sys, threading
sys.path.insert(0, {root!r})
import gnetcompat as gnet

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
port = srv.getsockname()[1]


def serve():
    conn, _ = srv.accept()
    while True:
        data = conn.recv(100)
        if not data:
            break
        conn.sendall(data)
    conn.close()


threading.Thread(target=serve, daemon=True).start()
replied = threading.Event()
opened = []


class Handler(gnet.BuiltinEventEngine):
    def OnBoot(self, eng):
        print("OnBoot in", threading.current_thread().name)

    def OnOpen(self, c):
        opened.append(threading.current_thread().name)
        return None

    def OnTraffic(self, c):
        print("OnTraffic", c.Next(-1).decode())
        replied.set()

    def OnShutdown(self, eng):
        print("OnShutdown")

    def OnClose(self, c, err):
        print("OnClose", err)


client = gnet.NewClient(Handler())
client.Start()
c = client.Dial("tcp", "127.0.0.1:%d" % port)
print("Dial returned", type(c).__name__, "after OnOpen in", opened)
c.AsyncWrite(b"hello", None)
print("replied", replied.wait(20))
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
refusedPort = closed.getsockname()[1]
closed.close()
try:
    client.Dial("tcp", "127.0.0.1:%d" % refusedPort)
except ConnectionRefusedError as e:
    print("refused", "127.0.0.1:%d" % refusedPort in str(e))
client.Stop()
print("threads", [t.name for t in threading.enumerate() if t.name.startswith("gnetcompat")])
"""

CLIENT_EXPECTED = [
    "OnBoot in MainThread",
    "Dial returned Conn after OnOpen in ['gnetcompat-client-reactor']",
    "OnTraffic hello",
    "replied True",
    "refused True",
    "OnShutdown",
    "OnClose None",
    "threads []",
]

#: a client started first, then gnet.Run on the reactor the client runs
RUN_SCRIPT = """
import sys, threading
sys.path.insert(0, {root!r})
import gnetcompat as gnet

port = int(sys.argv[1])


class Client(gnet.BuiltinEventEngine):
    def OnTraffic(self, c):
        print("client got", c.Next(-1).decode(), flush=True)


client = gnet.NewClient(Client())
client.Start()


class Echo(gnet.BuiltinEventEngine):
    def OnBoot(self, eng):
        def dial():
            client.Dial("tcp", "127.0.0.1:%d" % port).AsyncWrite(b"hello", None)

        threading.Thread(target=dial).start()

    def OnTraffic(self, c):
        c.Write(c.Next(-1))

    def OnShutdown(self, eng):
        print("server OnShutdown", flush=True)


gnet.Run(Echo(), "tcp://127.0.0.1:%d" % port)
print("Run returned", flush=True)
client.Stop()
print("client stopped", flush=True)
try:
    gnet.Run(Echo(), "tcp://127.0.0.1:%d" % port)
except RuntimeError as e:
    print("Run again:", "cannot be restarted" in str(e), flush=True)
"""


class PlainScriptTests(TestCase):
    """Real scripts: a client that runs itself, and C{Run} beside it."""

    timeout = 60

    def write(self, text: str) -> str:
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        script = os.path.join(cwd, "script.py")
        with open(script, "w") as f:
            f.write(text.format(root=ROOT))
        return script

    async def test_clientRunsItself(self) -> None:
        """
        C{NewClient(h).Start()} with no reactor running: OnBoot on the
        script's thread, C{Dial} blocks and returns the Conn after OnOpen
        ran on the client's reactor thread, C{AsyncWrite} from the script
        reaches the peer and the reply reaches C{OnTraffic}, a refused dial
        raises C{ConnectionRefusedError} naming the address, and C{Stop()}
        runs OnShutdown and OnClose and ends the reactor thread.  The script
        exits 0 and prints nothing else (no traceback, no warning).
        """
        script = self.write(CLIENT_SCRIPT)
        proc = spawn(self, [sys.executable, script], cwd=os.path.dirname(script))
        code = await proc.waitForExit(40)
        self.assertEqual((code, proc.exitSignal), (0, None), proc.output)
        self.assertEqual(proc.output.splitlines(), CLIENT_EXPECTED)

    async def runBesideClient(self, sig: int) -> None:
        """
        Start a client, then C{Run} a server on the reactor the client
        runs; the client dials it and gets its echo; C{sig} stops the
        server gracefully and C{Run} returns; C{Stop()} ends the client;
        a second C{Run} fails saying the reactor cannot be restarted.
        """
        script = self.write(RUN_SCRIPT)
        proc = spawn(self, [sys.executable, script, str(freePort())], cwd=os.path.dirname(script))
        await proc.waitFor("client got hello", 40)
        proc.signal(sig)
        code = await proc.waitForExit(30)
        self.assertEqual((code, proc.exitSignal), (0, None), proc.output)
        self.assertEqual(
            proc.output.splitlines(),
            [
                "client got hello",
                "server OnShutdown",
                "Run returned",
                "client stopped",
                "Run again: True",
            ],
        )

    async def test_runBesideClientSIGINT(self) -> None:
        """Ctrl-C stops a C{Run} served on a client's reactor thread gracefully."""
        await self.runBesideClient(signal.SIGINT)

    async def test_runBesideClientSIGTERM(self) -> None:
        """SIGTERM stops a C{Run} served on a client's reactor thread gracefully."""
        await self.runBesideClient(signal.SIGTERM)


class ReactorThreadTests(SynchronousTestCase):
    """The reactor thread a client of a plain script owns, on a private reactor."""

    def test_startStopJoin(self) -> None:
        """
        C{start} returns once the reactor runs in a daemon thread; C{stop}
        stops it and joins the thread; the reactor cannot run again, and a
        second C{start} says so.
        """
        # running a reactor makes its thread Twisted's process-wide I/O thread:
        # put trial's back, or later thread checks would see a dead thread's id
        self.patch(threadable, "ioThread", threadable.ioThread)
        reactor = SelectReactor()
        owner = _ReactorThread(reactor)
        owner.start()
        self.assertTrue(reactor.running)
        assert owner.thread is not None
        self.assertTrue(owner.thread.daemon)
        self.assertEqual(owner.thread.name, "gnetcompat-client-reactor")
        self.assertTrue(owner.stop())
        self.assertFalse(owner.thread.is_alive())
        e = self.assertRaises(RuntimeError, _ReactorThread(reactor).start)
        self.assertIn("cannot be restarted", str(e))

    def test_givenReactorNeverRun(self) -> None:
        """
        A client given a reactor (the application's, here one not running)
        never starts a thread for it: C{Dial} returns a Deferred, as before.
        """
        before = set(threading.enumerate())
        client = gnet.NewClient(gnet.BuiltinEventEngine(), reactor=MemoryReactorClock())
        client.Start()
        self.assertEqual(set(threading.enumerate()), before)
        d = client.Dial("tcp", "127.0.0.1:9")
        self.assertIsInstance(d, Deferred)
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d)

    def test_underTrialNeverRun(self) -> None:
        """
        Under a Twisted runner (here trial, which runs the global reactor
        only between a test's first steps and its waits), C{Start()} with
        the global reactor stopped leaves it to the runner: no thread.
        """
        self.assertFalse(reactor.running)
        before = set(threading.enumerate())
        client = gnet.NewClient(gnet.BuiltinEventEngine())
        client.Start()
        self.assertEqual(set(threading.enumerate()), before)
        self.successResultOf(client.Stop())

    def test_dialErrorsNameWhatWasDialled(self) -> None:
        """
        An unknown network or an empty unix path fails naming the dial; the
        text of a hostile address is escaped.
        """
        client = gnet.NewClient(gnet.BuiltinEventEngine(), reactor=MemoryReactorClock())
        client.Start()
        e: Any = self.failureResultOf(client.Dial("sctp", "h:1"), ErrUnsupportedProtocol).value
        self.assertIn("dial 'sctp' 'h:1'", str(e))
        e = self.failureResultOf(client.Dial("unix", ""), ErrInvalidNetworkAddress).value
        self.assertIn("dial unix", str(e))
        e = self.failureResultOf(client.Dial("tcp", "h\x1b[2J"), ErrInvalidNetworkAddress).value
        self.assertIn("h\\x1b[2J", str(e))
        self.assertNotIn("\x1b", str(e))
