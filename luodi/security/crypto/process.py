"""Process hardening for a decrypted model: no core dumps, no /proc peeking.

A decrypted model lives in a memfd, reachable as ``/proc/<pid>/fd/N`` and through
``/proc/<pid>/mem`` by any process of the same user while the process is
*dumpable*. ``prctl(PR_SET_DUMPABLE, 0)`` makes those files root-owned and refuses
ptrace from the same user, and the kernel writes no core dump on a crash. Root (or
CAP_SYS_PTRACE) still reads everything: this narrows the readers to the machine's
administrators, it does not hide the model from them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["is_dumpable", "make_non_dumpable"]

_log = logging.getLogger(__name__)
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def _prctl(option: int, arg: int = 0) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    result = int(libc.prctl(option, arg, 0, 0, 0))
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}) failed")
    return result


def make_non_dumpable() -> bool:
    """Mark this process non-dumpable; True if it now is (always False off Linux).

    Idempotent and process-wide; it is never undone (a later exec resets it).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        _prctl(_PR_SET_DUMPABLE, 0)
        return _prctl(_PR_GET_DUMPABLE) == 0
    except OSError as exc:
        _log.warning("could not mark the process non-dumpable: %s", exc)
        return False


def is_dumpable() -> bool:
    """Whether this process is dumpable (True off Linux, where nothing is checked)."""
    if not sys.platform.startswith("linux"):
        return True
    return _prctl(_PR_GET_DUMPABLE) != 0
