"""Our files are the service user's only: directories 0700, files 0600.

Every ``auditstream`` process sets ``umask 077`` (``cli/main.py``), so what it creates
(the chDB store, Faust state, logs, broker data, spools, ``sink.json``) starts private and
children (the Kafka broker, the worker, the sink) inherit it. ``make_private`` fixes a home
made by an older version, or by a process with another umask, when a service starts.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private(root: Path) -> int:
    """Remove group and other permissions under ``root`` (itself included); returns how
    many entries changed. Symlinks are not followed; entries that vanish meanwhile (a
    running store merging parts) are skipped."""
    if not root.exists():
        return 0
    changed = 0
    for directory, dirnames, filenames in os.walk(root):
        entries = [directory, *(os.path.join(directory, n) for n in (*dirnames, *filenames))]
        for entry in entries:
            with contextlib.suppress(FileNotFoundError, PermissionError):
                mode = os.lstat(entry).st_mode
                if stat.S_ISLNK(mode) or not mode & 0o077:
                    continue
                os.chmod(entry, stat.S_IMODE(mode) & 0o700)
                changed += 1
    return changed
