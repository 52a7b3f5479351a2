# -*- test-case-name: tests.test_shadow -*-
"""
The stdlib-name trap, said plainly: a script called C{http.py} (or
C{socket.py}, C{logging.py}, ...) run as C{python http.py} puts its own
folder first on C{sys.path}, so when Twisted imports the standard library's
C{http} it gets the script again, half initialised, and fails far from the
cause (C{partially initialized module 'gnetcompat' has no attribute
'BuiltinEventEngine'}).  L{guard} installs an import hook that turns exactly
that import, a standard-library name resolving to the running script's own
file, into one C{ImportError} naming the file and the fix.  Nothing else is
affected: other imports, and scripts whose names are not standard modules,
never reach the check.

This module imports only the standard library, and installs the hook when
imported: gnetcompat/__init__ imports it before anything of Twisted.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from typing import Any

__all__ = ["StdlibShadowedError", "guard"]


class StdlibShadowedError(ImportError):
    """A standard module's name resolved to the running script's own file."""


class _Finder:
    """A C{sys.meta_path} finder that refuses the script's own file as a standard module."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname != self.name:
            return None
        machinery = importlib.machinery
        if machinery.BuiltinImporter.find_spec(fullname) or machinery.FrozenImporter.find_spec(
            fullname
        ):
            return None  # compiled in: found before any file, never shadowed
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        origin = getattr(spec, "origin", None)
        if origin and os.path.realpath(origin) == self.path:
            stem = self.name
            raise StdlibShadowedError(
                f"your script {os.path.basename(self.path)!r} has the name of Python's "
                f"standard module {stem!r}: run as a script, its folder comes first on "
                f"sys.path, so importing {stem!r} (Twisted does) loads the script again "
                f"instead of the standard module. Rename it (e.g. {stem}_server.py) and "
                "remove any __pycache__ next to it."
            )
        return None


def guard(main: Any = None) -> bool:
    """
    Install the hook when the running script (C{__main__}, or C{main}) has
    a standard module's name and its folder is first on C{sys.path}; return
    whether it was installed.  Once per process.
    """
    if main is None:
        main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or not sys.path:
        return False
    stem, ext = os.path.splitext(os.path.basename(path))
    if ext != ".py" or stem not in getattr(sys, "stdlib_module_names", ()):
        return False
    first = os.path.realpath(sys.path[0] or os.getcwd())
    real = os.path.realpath(path)
    if os.path.dirname(real) != first:
        return False
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _Finder(stem, real))
    return True


# on import: gnetcompat/__init__ imports this module before anything else
guard()
