# -*- test-case-name: tests.test_tap -*-
"""
The echo service's process-level parts, around the engine's
L{gnetcompat.EngineService}: the open-file limit raised at start, SIGHUP
(logged and ignored, or a TLS certificate reload), and the clean-up of the
workers' statistics directory.  L{gnetcompat.tap} builds the service tree.
"""

from __future__ import annotations

import shutil
import signal
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

import gnetcompat as gnet
from gnetcompat.echo.limits import raiseOpenFileLimit

__all__ = ["EchoService", "TLSReloadService"]


class EchoService(MultiService):
    """
    The service tree's top.  At start it raises the soft open-file limit
    (C{RLIMIT_NOFILE}) to the hard limit: the echo service holds one
    descriptor per connection, and the usual soft limit of 1024 would make
    accepts fail with C{EMFILE} long before the server is busy (the library
    itself leaves process limits alone).  Once its children stopped (the
    engine drained) it removes the workers' statistics directory
    (multicore mode).  While it runs without TLS, C{SIGHUP} is logged and
    ignored (with TLS, L{TLSReloadService} has installed its reload first;
    C{SIGUSR1} reopens a C{--logfile}, as twistd does).
    """

    log = Logger(namespace="gnetecho")

    def __init__(self, handler: Any) -> None:
        super().__init__()
        self.handler = handler
        self._oldHup: Any = None

    def startService(self) -> None:
        raiseOpenFileLimit(log=self.log)
        super().startService()
        if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
            self._oldHup = signal.signal(signal.SIGHUP, self._onHup)

    def _onHup(self, signum: int, frame: Any) -> None:
        from twisted.internet import reactor

        cast(IReactorFromThreads, reactor).callFromThread(
            self.log.info,
            "SIGHUP received: ignored (nothing to reload; SIGUSR1 reopens the --logfile, "
            "SIGTERM stops)",
        )

    def stopService(self) -> Any:
        if self._oldHup is not None:
            signal.signal(signal.SIGHUP, self._oldHup)
            self._oldHup = None

        def remove(result: Any) -> Any:
            path = getattr(self.handler, "statsDir", None)
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
            return result

        return super().stopService().addBoth(remove)


class TLSReloadService(Service):
    """
    With TLS: C{SIGHUP} reloads the certificate and key files through the
    engine's C{reloadCertificates} (new connections get the new
    certificate, open ones keep theirs; a file that cannot be used leaves
    the current one in place and logs why).  In multicore mode the parent
    reads and checks the files, then sends the checked bytes to every
    worker over the engine's bus; workers never read the disk and get no
    signal.  A SIGHUP handler installed before keeps running after ours.
    """

    def __init__(self, engineService: Any) -> None:
        self.engineService = engineService
        self._restore: Any = None

    def startService(self) -> None:
        super().startService()
        from twisted.internet import reactor

        self._restore = gnet.installReloadOnSIGHUP(self.reload, cast(IReactorFromThreads, reactor))

    def reload(self) -> list[str]:
        """Reload now (what SIGHUP does); the error messages, empty when reloaded."""
        eng = self.engineService.engine
        if eng is None:
            return ["not started"]
        errors: list[str] = eng.reloadCertificates()
        return errors

    def stopService(self) -> Any:
        if self._restore is not None:
            self._restore()
            self._restore = None
        return super().stopService()
