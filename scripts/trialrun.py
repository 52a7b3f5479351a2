#!/usr/bin/env python3
"""
Run twisted.trial on test modules and end with a one-line machine-readable
count.

Usage (normally through ``scripts/test``)::

    python scripts/trialrun.py [--unit] [TRIAL-OPTIONS] [TESTS...]

``TESTS`` defaults to ``tests``.  ``--unit`` runs the fast unit tier: the
modules listed in ``tests/UNIT_MODULES`` (or the ``TESTS`` given), with a
guard that fails any test opening a socket or starting a process there.
Any ``trial`` option is accepted and passed on (``--random=SEED``, ``-x``,
``--reporter=...``, ``-j N``, ...); see ``python -m twisted.trial --help``.
Trial's default order (alphabetical) is already deterministic; note that
trial's ``--random=0`` picks a time-based seed, so it is *not* a fixed order.

Trial's normal (tree) reporter output goes to stdout, and the very last line
of stdout is::

    N passed, N failed[, N skipped]

computed from trial's result object: passed = successes, failed = failures +
errors + unexpected successes, skipped = skips (shown only when non-zero).
Expected failures (``todo``) are counted in none of them.  The exit status is
0 if and only if trial's ``wasSuccessful()`` holds, the failed count is 0
(trial itself lets unexpected successes pass) and at least one test ran.

``-j N`` works and gives the same counts (Twisted 26.10's distributed
reporter crashes printing an unexpected success; the counts are still
printed from the recorded reporter and the run exits non-zero).
``--until-failure`` counts the last iteration; ``--dry-run`` reports every
test as passed, as trial does.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

from twisted.python import failure, usage
from twisted.scripts import trial
from twisted.trial.reporter import TestResult

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)

DEFAULT_TESTS = ["tests"]
UNIT_MODULES = os.path.join(_ROOT, "tests", "UNIT_MODULES")

#: Audit events that a unit test must not cause (sys.addaudithook).
_NOT_IN_UNIT_TESTS = frozenset(
    {"socket.__new__", "subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec"}
)
#: ctypes.util.find_library runs ``ldconfig -p`` while some modules import.
_ALLOWED_PROGRAMS = frozenset({"ldconfig"})


def unitModules(path: str = UNIT_MODULES) -> list[str]:
    """
    The module names listed in C{tests/UNIT_MODULES}: one per line, C{#}
    comments and blank lines ignored.
    """
    with open(path, encoding="utf-8") as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    return [name for name in names if name]


class UnitTierError(RuntimeError):
    """
    A test in the unit tier opened a socket or started a process.
    """


def _unitGuard(event: str, args: tuple[Any, ...]) -> None:
    """
    Audit hook for the unit tier: raise L{UnitTierError} in the test that
    creates a socket or starts a process.
    """
    if event not in _NOT_IN_UNIT_TESTS:
        return
    if event == "subprocess.Popen" and os.path.basename(str(args[0])) in _ALLOWED_PROGRAMS:
        return
    raise UnitTierError(
        f"unit tier: {event}{args[:2]!r}: a test that opens sockets or starts processes "
        "belongs in the integration tier (remove its module from tests/UNIT_MODULES)"
    )


def _innermost(result: Any) -> Any:
    """
    Strip trial's result decorators (``_ExitWrapper`` for ``-x``,
    ``UncleanWarningsReporterWrapper``, ``DistReporter`` for ``-j``) down to
    the reporter that keeps the counts.
    """
    seen = 0
    while not isinstance(result, TestResult) and seen < 10:
        inner = getattr(result, "_originalReporter", None) or getattr(result, "original", None)
        if inner is None:
            break
        result, seen = inner, seen + 1
    return result


def _counts(result: Any) -> tuple[int, int, int, int]:
    """
    Read the counts from a trial result.

    :return: ``(passed, failed, skipped, testsRun)``
    """
    result = _innermost(result)
    passed = result.successes
    if not isinstance(passed, int):  # some IReporters keep a list
        passed = len(passed)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skips)
    return passed, failed, skipped, result.testsRun


def summaryLine(passed: int, failed: int, skipped: int) -> str:
    """
    Format the final count line.
    """
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    return line


def _useRootOnPath() -> None:
    """
    ``python scripts/trialrun.py`` puts ``scripts/`` first on ``sys.path``;
    test names such as ``tests.test_conn`` resolve against the repository
    root instead (``-j`` workers inherit this ``sys.path``).
    """
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
        sys.path[0] = _ROOT
    elif _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)


def main(argv: list[str]) -> NoReturn:
    _useRootOnPath()
    unit = "--unit" in argv
    argv = [a for a in argv if a != "--unit"]
    config = trial.Options()
    try:
        config.parseOptions(argv)
    except usage.error as ue:
        raise SystemExit(f"trialrun: {ue}") from None
    if not config["tests"]:
        config["tests"].extend(unitModules() if unit else DEFAULT_TESTS)
    if unit:
        if config["jobs"]:
            raise SystemExit("trialrun: --unit runs in one process (no -j)")
        sys.addaudithook(_unitGuard)
    trial._initialDebugSetup(config)

    # Keep hold of the reporter trial builds, so the counts survive a crash
    # in trial's own reporting (Twisted 26.10's -j reporter raises
    # AttributeError while printing an unexpected success).
    made: list[Any] = []
    reporterFactory = config["reporter"]

    def _recordingReporterFactory(*args: Any, **kwargs: Any) -> Any:
        made.append(reporterFactory(*args, **kwargs))
        return made[-1]

    config["reporter"] = _recordingReporterFactory
    try:
        runner = trial._makeRunner(config)
    except trial._DebuggerNotFound as e:
        raise SystemExit(f"trialrun: {e}") from None

    suite = trial._getSuite(config)
    crashed = False
    result: Any
    try:
        if config["until-failure"]:
            result = runner.runUntilFailure(suite)
        else:
            result = runner.run(suite)
    except Exception:  # any crash inside trial itself
        crashed = True
        sys.stdout.flush()
        failure.Failure().printTraceback(file=sys.stderr)
        sys.stderr.write("trialrun: trial itself raised; the run counts as failed\n")
        if not made:
            sys.stdout.write(summaryLine(0, 1, 0) + "\n")
            sys.stdout.flush()
            sys.exit(1)
        result = made[-1]
    if config.tracer:
        sys.settrace(None)
        config.tracer.results().write_results(
            show_missing=True, summary=False, coverdir=config.coverdir().path
        )

    passed, failed, skipped, testsRun = _counts(result)
    if crashed:
        failed = max(failed, 1)
    # trial's wasSuccessful() ignores unexpected successes; they count as
    # failed here, so the exit status agrees with the printed line.
    ok = not crashed and result.wasSuccessful() and failed == 0 and testsRun > 0
    if testsRun == 0:
        sys.stderr.write(f"trialrun: no tests ran from {config['tests']!r}\n")
    sys.stderr.flush()
    out = sys.stdout
    out.flush()
    out.write(summaryLine(passed, failed, skipped) + "\n")
    out.flush()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
