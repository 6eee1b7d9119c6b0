"""Builds test payloads from source at test time (musl-gcc, gcc -static, go build), cached by source hash."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "tests" / "payloads"
CACHE = ROOT / "tests" / ".build"

TOOLCHAINS = {
    "musl": ["musl-gcc", "-static", "-g", "-O0", "-pthread"],
    "glibc": ["gcc", "-static", "-g", "-O0", "-pthread"],
    "glibc-pie": ["gcc", "-static-pie", "-fPIE", "-g", "-O0", "-pthread"],
    "dynamic": ["gcc", "-g", "-O0"],
    "musl-dynamic": ["musl-gcc", "-g", "-O0"],         # interpreter /lib/ld-musl-x86_64.so.1 (musl's libc.so)
}


def build(source: str | Path, toolchain: str = "musl", extra: tuple[str, ...] = ()) -> Path:
    """Compile tests/payloads/<source> (or an absolute path) and return the path of `<stem>.<toolchain>.km`.

    The output is reused while the source, toolchain and flags are unchanged, so a session builds each once."""
    src = Path(source)
    if not src.is_absolute():
        src = PAYLOADS / src
    CACHE.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".go":
        cmd = ["go", "build", "-o"]
        key = hashlib.sha256(src.read_bytes() + b"go" + " ".join(extra).encode()).hexdigest()[:12]
        out = CACHE / f"{src.stem}.go.{key}.km"
        if not out.exists():
            env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOCACHE=str(CACHE / "gocache"),
                       GOPATH=str(CACHE / "gopath"), GO111MODULE="off")
            subprocess.run([*cmd, str(out) + ".tmp", *extra, str(src)], check=True, env=env, cwd=src.parent,
                           capture_output=True)
            os.replace(str(out) + ".tmp", out)
        return out
    flags = TOOLCHAINS[toolchain] + list(extra)
    key = hashlib.sha256(src.read_bytes() + " ".join(flags).encode()).hexdigest()[:12]
    out = CACHE / f"{src.stem}.{toolchain}.{key}.km"
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        subprocess.run([*flags, "-o", str(tmp), str(src), *(["-lm"])], check=True, capture_output=True)
        os.replace(tmp, out)
    return out
