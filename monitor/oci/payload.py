"""What a container's args[0] is, looked up the way the kernel will see it inside the container: on the
process's PATH, through symlinks and bind mounts, without entering the container. Reads only ELF headers
(pyelftools would cost km-runtime more start-up than the whole lookup)."""
from __future__ import annotations

import os
import posixpath
import struct
from .errors import RuntimeProblem

PT_INTERP, ET_EXEC, ET_DYN, EM_X86_64 = 3, 2, 3, 62
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Executable:
    """A program in the container (a plain class: dataclasses would add ~8 ms to every runtime call)."""

    def __init__(self, path: str, host_path: str, kind: str, found: str | None = None) -> None:
        self.path = path            # absolute, inside the container, symlinks resolved
        self.host_path = host_path  # where the runtime reads it
        self.kind = kind            # "static", "static-pie", "dynamic", "script"
        self.found = found or path  # the path execvp hands the kernel (what a script's interpreter is given)


class ContainerFs:
    """The container's filesystem seen from the host: its rootfs plus the bind mounts of its config."""

    def __init__(self, rootfs: str, mounts: list[dict]) -> None:
        self.rootfs = rootfs
        binds = [(m["destination"].rstrip("/") or "/", m["source"]) for m in mounts
                 if m.get("source", "").startswith("/") and ("bind" in m.get("options", []) or "rbind" in
                                                              m.get("options", []) or m.get("type") == "bind")]
        self.binds = sorted(binds, key=lambda b: len(b[0]), reverse=True)

    def host(self, path: str) -> str:
        """The host path behind container path `path` (absolute, already free of symlinks)."""
        for dest, src in self.binds:
            if path == dest or path.startswith(dest + "/"):
                return src + path[len(dest):]
        return self.rootfs + path

    def resolve(self, path: str, hops: int = 40) -> str:
        """`path` with every symlink resolved inside the container (an absolute link stays in the container)."""
        parts = [p for p in path.split("/") if p]
        done = "/"
        while parts and hops:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                done = posixpath.dirname(done)
                continue
            candidate = posixpath.join(done, part)
            host = self.host(candidate)
            if os.path.islink(host):
                hops -= 1
                target = os.readlink(host)
                parts = [p for p in target.split("/") if p] + parts
                done = "/" if target.startswith("/") else done
                continue
            done = candidate
        return done


def find_executable(fs: ContainerFs, arg0: str, env: list[str], cwd: str) -> Executable:
    """args[0] as execvp in the container would find it; RuntimeProblem when it is missing or not a program."""
    if "/" in arg0:
        candidates = [arg0 if arg0.startswith("/") else posixpath.join(cwd or "/", arg0)]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [posixpath.join(d or ".", arg0) for d in path.split(":")]
    for candidate in candidates:
        real = fs.resolve(candidate)
        host = fs.host(real)
        if os.path.isfile(host):
            return Executable(real, host, classify(host, arg0), candidate)
    raise RuntimeProblem(arg0, "no such file in the container" if "/" in arg0 else
                         "not found on the container's PATH")


def script_interpreter(fs: ContainerFs, script: Executable, cwd: str) -> tuple[Executable, list[str]] | None:
    """A #! script's interpreter and the argv the kernel gives it (interpreter as written, its one optional
    argument, the script's path), as binfmt_script reads the first line; None when the line names no program
    (the kernel's own error then reaches the engine as with runc)."""
    try:
        with open(script.host_path, "rb") as f:
            line = f.read(256)[2:].split(b"\n", 1)[0]
    except OSError:
        return None
    rest = line.lstrip(b" \t")
    cut = next((i for i, c in enumerate(rest) if c in b" \t"), len(rest))
    name = rest[:cut].decode(errors="surrogateescape")
    arg = rest[cut:].strip(b" \t").decode(errors="surrogateescape")
    if not name:
        return None
    real = fs.resolve(name if name.startswith("/") else posixpath.join(cwd or "/", name))
    host = fs.host(real)
    if not os.path.isfile(host):
        return None
    return Executable(real, host, classify(host, name), name), [name, *([arg] if arg else []), script.found]


def classify(host_path: str, name: str) -> str:
    """"static", "static-pie", "dynamic" or "script", from the ELF header and PT_INTERP; RuntimeProblem naming
    `name` (as the container's user wrote it) when it is no program km runs."""
    try:
        with open(host_path, "rb") as f:
            head = f.read(64)
            if head[:2] == b"#!":
                return "script"
            if head[:4] != b"\x7fELF":
                raise RuntimeProblem(name, "not an ELF executable (km runs Linux x86-64 ELF programs)")
            if head[4] != 2 or head[5] != 1:
                raise RuntimeProblem(name, "not a 64-bit little-endian ELF executable")
            e_type, e_machine = struct.unpack_from("<HH", head, 16)
            if e_machine != EM_X86_64:
                raise RuntimeProblem(name, "not an x86-64 executable")
            if e_type not in (ET_EXEC, ET_DYN):
                raise RuntimeProblem(name, "not an executable (an ELF object or core file)")
            e_phoff, = struct.unpack_from("<Q", head, 32)
            e_phentsize, e_phnum = struct.unpack_from("<HH", head, 54)
            f.seek(e_phoff)
            table = f.read(e_phentsize * e_phnum)
    except OSError as e:
        raise RuntimeProblem(name, e.strerror or str(e)) from None
    for i in range(e_phnum):
        if struct.unpack_from("<I", table, i * e_phentsize)[0] == PT_INTERP:
            return "dynamic"
    return "static" if e_type == ET_EXEC else "static-pie"
