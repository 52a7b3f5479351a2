"""
Read the per-case results that kosoku (the Autobahn TestSuite runner) wrote.

kosoku output format (kosoku 0.1.0, C{kosoku -o OUTDIR HOST:PORT})
===================================================================

C{OUTDIR/index.json} is Autobahn's own index format::

    {
       "<agent>": {                       # the server's "Server" header
          "<case id>": {                  # "1.1.1" ... "13.7.18"
             "behavior": "OK",            # OK | NON-STRICT | INFORMATIONAL
                                          # | UNIMPLEMENTED | FAILED
             "behaviorClose": "OK",       # same scale, for the closing
             "remoteCloseCode": 1000,     # or null
             "duration": 3,               # milliseconds
             "reportfile": "<agent>_case_1_1_1.json"
          }, ...
       }
    }

(JSON with C{indent=3} and sorted keys.)  Next to it, one
C{<agent>_case_<id with _>.json} per case (Autobahn's per-case report:
C{id}, C{behavior}, C{behaviorClose}, C{expected}, C{received},
C{result}, C{resultClose}, C{wirelog}, C{httpRequest}, C{httpResponse}...)
and an C{.html} rendering of each, plus C{index.html}.  The agent name is
cleaned for file names (lower case, letters and digits, C{_} for the rest).

kosoku prints one line per case that is not OK/INFORMATIONAL
(C{"  3.2: behavior=NON-STRICT, behaviorClose=OK — ..."}), then
C{"wrote reports for N cases to OUTDIR/"}, and exits 1 when any case
failed, 0 otherwise.

Run as a script to print the summary::

    python -m tests.autobahn_report /tmp/ks
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import NamedTuple

#: The behaviours that count as a strict pass.
STRICT_OK = frozenset({"OK", "INFORMATIONAL"})


class CaseResult(NamedTuple):
    """
    The outcome of one TestSuite case.

    :ivar behavior: the verdict on the messages exchanged.
    :ivar behaviorClose: the verdict on the closing of the connection.
    """

    behavior: str
    behaviorClose: str


def _caseKey(caseId: str) -> tuple[int, ...]:
    return tuple(int(part) for part in caseId.split("."))


def readResults(outdir: str, agent: str | None = None) -> dict[str, CaseResult]:
    """
    Read C{OUTDIR/index.json}.

    :param outdir: the directory given to C{kosoku -o}.
    :param agent: which agent's results; the only one when C{None}.
    :returns: C{{case_id: CaseResult}} in case order.
    :raises ValueError: when C{agent} is C{None} and the index holds
        several agents, or names an agent it does not hold.
    """
    with open(os.path.join(outdir, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    if agent is None:
        if len(index) != 1:
            raise ValueError(f"index holds agents {sorted(index)}; pick one")
        (cases,) = index.values()
    else:
        if agent not in index:
            raise ValueError(f"no agent {agent!r} in {sorted(index)}")
        cases = index[agent]
    return {
        caseId: CaseResult(entry["behavior"], entry["behaviorClose"])
        for caseId, entry in sorted(cases.items(), key=lambda kv: _caseKey(kv[0]))
    }


def behaviors(outdir: str, agent: str | None = None) -> dict[str, str]:
    """
    :returns: C{{case_id: behavior}} (see L{readResults}).
    """
    return {caseId: r.behavior for caseId, r in readResults(outdir, agent).items()}


def summarize(results: dict[str, CaseResult]) -> Counter[str]:
    """
    Count the cases per behaviour.

    :returns: e.g. C{Counter({"OK": 514, "INFORMATIONAL": 3})}.
    """
    return Counter(r.behavior for r in results.values())


def notStrict(results: dict[str, CaseResult]) -> dict[str, CaseResult]:
    """
    :returns: the cases whose behaviour or closing behaviour is not a strict
        pass (not OK/INFORMATIONAL).
    """
    return {
        caseId: r
        for caseId, r in results.items()
        if r.behavior not in STRICT_OK or r.behaviorClose not in STRICT_OK
    }


def main(argv: list[str] | None = None) -> int:
    """
    Print the summary and the non-strict cases; exit 1 if there are any.
    """
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m tests.autobahn_report OUTDIR [AGENT]", file=sys.stderr)
        return 2
    results = readResults(args[0], args[1] if len(args) > 1 else None)
    counts = summarize(results)
    counted = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"{len(results)} cases: {counted}")
    bad = notStrict(results)
    for caseId, r in bad.items():
        print(f"  {caseId}: behavior={r.behavior} behaviorClose={r.behaviorClose}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
