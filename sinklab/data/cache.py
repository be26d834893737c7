"""The cache of tokenizers and token files: where it is, and clearing what a killed writer left in it.

Writers build an entry under a temporary name `.NAME.PID.tmp` and rename it into place, so a reader
never sees half an entry; a writer killed mid-way (kill -9, power loss) leaves its temporary behind,
and the next use of the cache removes it once its process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

# `.NAME.PID.tmp`, PID at most 7 digits (Linux caps pids at 2**22); tempfile's names end in 8 random
# characters, so they never match and are only removed once old.
_PID_TMP = re.compile(r"^\..+\.(\d{1,7})\.tmp$")
STALE_SECONDS = 24 * 3600  # any temporary this old is a leftover, whatever its name


def cache_dir() -> Path:
    """$SINKLAB_CACHE, else ~/.cache/sinklab."""
    return Path(os.environ.get("SINKLAB_CACHE") or Path.home() / ".cache" / "sinklab").expanduser()


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(cache: Path, *, now: float | None = None) -> list[Path]:
    """Remove temporaries of dead writers (or older than a day) under cache/tokenizers and cache/tokens/*.

    Returns what was removed. A live writer's temporary is left alone."""
    now = time.time() if now is None else now
    folders = [Path(cache) / "tokenizers"]
    tokens = Path(cache) / "tokens"
    if tokens.is_dir():
        folders += [p for p in tokens.iterdir() if p.is_dir()]
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
                continue
            match = _PID_TMP.match(entry.name)
            try:
                old = now - entry.lstat().st_mtime > STALE_SECONDS
            except FileNotFoundError:
                continue  # its writer just renamed it into place
            if old or (match is not None and not pid_alive(int(match.group(1)))):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed
