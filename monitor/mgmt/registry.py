"""Which km processes of this user serve a management socket (km-cli list): one small JSON file per km, in
$XDG_RUNTIME_DIR/km or /tmp/km-UID, written when the socket listens and removed when km ends. An entry whose
process is gone (a km that was killed) is dropped by the next listing."""
from __future__ import annotations

import json
import os
from typing import Any


def directory() -> str:
    """Private to this user: the session's runtime directory when there is one, else a folder in /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "km") if runtime and os.path.isdir(runtime) else f"/tmp/km-{os.getuid()}"


def register(socket_path: str) -> str:
    """Record this km; returns the entry's path (for unregister). What it runs is asked of it (km-cli list):
    an execve changes that."""
    folder = directory()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    entry = os.path.join(folder, f"{os.getpid()}.json")
    temporary = entry + ".tmp"
    with open(temporary, "w") as f:
        json.dump({"pid": os.getpid(), "socket": socket_path}, f)
    os.replace(temporary, entry)
    return entry


def unregister(entry: str) -> None:
    """Remove an entry; one already gone (a listing dropped it) is no error."""
    try:
        os.unlink(entry)
    except OSError:
        pass


def entries() -> list[dict[str, Any]]:
    """The live entries, oldest pid first; stale ones are removed."""
    folder = directory()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                entry = json.load(f)
            os.kill(int(entry["pid"]), 0)
        except ProcessLookupError:
            unregister(path)
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append(entry)
    return sorted(found, key=lambda e: e["pid"])
