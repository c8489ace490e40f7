"""Whether a process exists on this host: the one check the leases, the Triton state file and the demo's
temporary-file cleanup all make about a pid they recorded."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (signal 0 checks without signalling; a process of
    another user answers ``PermissionError`` and exists)."""
    if pid <= 0:  # 0 and negative pids address process groups, never one recorded process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
