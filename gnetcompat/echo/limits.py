# -*- test-case-name: tests.test_tap -*-
"""Process limits a server needs: the open-file limit (one descriptor per connection)."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

_log = Logger(namespace="gnetecho")

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]


def raiseOpenFileLimit(want: int | None = None, log: Any = None) -> tuple[int, int]:
    """
    Raise the soft C{RLIMIT_NOFILE} to the hard limit (or to C{want}), as far
    as allowed, and log the result; a limit too low for C{want} connections
    is logged as a warning naming the numbers.

    @return: the C{(soft, hard)} limits now in force.
    """
    log = log or _log
    if resource is None:
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if want is not None:
        target = min(target, want) if want > soft else soft
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warn(
                "could not raise the open-file limit from {soft} to {target}: {err}",
                soft=soft,
                target=target,
                err=e,
            )
    if want is not None and soft < want:
        log.warn(
            "open-file limit {soft} is below the {want} connections asked for; raise it "
            "(ulimit -n / LimitNOFILE=) or expect accept errors (EMFILE)",
            soft=soft,
            want=want,
        )
    else:
        log.debug("open-file limit: {soft} (hard {hard})", soft=soft, hard=hard)
    return soft, hard
