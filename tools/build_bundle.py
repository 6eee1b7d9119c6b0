"""Builds the relocatable km bundle (default /opt/km) from this repository: km, km-runtime, the Python running
this script and everything they load, so that km runs inside any container image without its libraries.

DEST is a symlink to the current version, `.DEST.versions/<time>-<id>` beside it (see install): an update never
touches the files of a version a container or a km still runs from.

Layout of a version (every path relative, so the tree may be copied or mounted anywhere):
  bin/km, bin/km-runtime     a static launcher (tools/bundle/launcher.c): BUNDLE/lib/ld.so --library-path
                             BUNDLE/lib BUNDLE/python/bin/python3 -I -S -c ENTRY argv...
  lib/                       the loader and every shared library the interpreter and the kept extension modules
                             need (resolved with the host's ldd), under their sonames
  python/bin/python3         the interpreter; python/lib/python3XY.zip the standard library as bytecode;
                             python/lib/python3.X/lib-dynload its extension modules; python/lib/python3.X/ km's
                             packages and the third-party ones they import, with precompiled bytecode
  km-bundle.json             what was built from what (monitor/process/self_exec.py recognizes a bundle by it)

The package list is derived, never kept by hand: the top-level imports of monitor/ and kdbg/ (minus kdbg/dap,
which the bundle does not serve) that are not standard library, plus their distributions' requirements. Whatever
else lives in the package directories (e.g. a generated cffi module) is copied as it is.
Run it with the Python to bundle: `python3 tools/build_bundle.py [--dest DIR]` (tools/build-bundle.sh does).
"""
from __future__ import annotations

import argparse
import ast
import compileall
import importlib.metadata as metadata
from importlib import _bootstrap_external
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "kdbg")
LEFT_OUT = ("kdbg/dap",)                    # the DAP bridge runs on the host, next to gdb and VS Code
ENTRY_POINTS = ("km", "km-runtime")
KEPT_ACROSS_BUILDS = ("etc/km-runtime.json",)  # this host's km-runtime settings (monitor/oci/settings.py)
# Standard library parts km never loads (and that pull in big libraries: Tk, curses, sqlite, OpenSSL)
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "distutils",
                   "venv", "sqlite3", "dbm", "curses", "site-packages", "turtle.py", "pydoc.py", "unittest"}
DYNLOAD_LEFT_OUT = re.compile(r"^_(tkinter|curses|curses_panel|sqlite3|dbm|gdbm|ssl|hashlib|ctypes_test|testcapi|"
                              r"testbuffer|testimportmultiple|testinternalcapi|testmultiphase|testclinic|xxtestfuzz|"
                              r"xxsubinterpreters)\.|^(readline|nis|xxlimited.*|xxsubtype)\.")
EXTRA_LIBS = ("libgcc_s.so.1",)             # dlopen'ed by glibc when a thread is cancelled or unwinds


def main() -> None:
    """Build (or copy, --from) a new version beside DEST and switch DEST to it, so a failed build leaves the old
    bundle whole and containers running from the old one keep their files (see install)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", default="/opt/km", help="where the bundle goes (a symlink to its current version; "
                                                      "default /opt/km)")
    ap.add_argument("--launcher", help="a prebuilt launcher binary (default: compile tools/bundle/launcher.c)")
    ap.add_argument("--from", dest="source", help="install this already built bundle instead of building one")
    args = ap.parse_args()
    started = time.monotonic()
    dest = Path(os.path.abspath(args.dest))
    versions = versions_of(dest)
    try:
        versions.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".new.", dir=versions))
    except OSError as e:
        raise SystemExit(f"build_bundle: {dest}: {e.strerror or e}") from None
    try:
        if args.source:
            if not (Path(args.source) / "km-bundle.json").is_file():
                raise SystemExit(f"build_bundle: {args.source}: not a km bundle (no km-bundle.json)")
            stage.rmdir()
            shutil.copytree(args.source, stage, symlinks=True)
        else:
            build(stage, args.launcher)
        version = install(stage, dest)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise SystemExit(f"build_bundle: {e.filename or dest}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in version.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"km bundle: {dest} -> {version} ({size / 1e6:.0f} MB) in {time.monotonic() - started:.1f} s")


def versions_of(dest: Path) -> Path:
    """Where DEST's versions live: beside it, hidden (/opt/km -> /opt/.km.versions/<version>)."""
    return dest.parent / f".{dest.name}.versions"


def install(stage: Path, dest: Path) -> Path:
    """Make the built tree `stage` DEST's current version: renamed to a version of its own, then DEST, a symlink,
    replaced by one to it in a single rename. A container bind-mounts the version DEST pointed to when it started
    (km-runtime mounts the resolved path), and a km running on the host maps files of it: deleting or emptying it
    under them (as replacing the directory did) broke their next re-exec. So the old versions stay, and only
    those no process uses any more are removed (prune). A DEST that is still a directory (an install before
    versions) becomes a version itself."""
    versions = versions_of(dest)
    started = subprocess.run([str(stage / "bin" / "km"), "--version"], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:             # never switch to a bundle that cannot start
        raise SystemExit(f"build_bundle: {stage}: its km does not start ({started.stderr.strip()[-200:]})")
    for kept in KEPT_ACROSS_BUILDS:
        if (dest / kept).exists():
            (stage / kept).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dest / kept, stage / kept)
    stage.chmod(0o755)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    version = versions / f"{stamp}-{stage.name.rsplit('.', 1)[-1]}"
    stage.rename(version)
    if dest.is_dir() and not dest.is_symlink():
        dest.rename(versions / f"{stamp}-before-versions")
    link = dest.with_name(f".{dest.name}.link.{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(version, dest.parent))
    os.replace(link, dest)
    prune(versions, version)
    return version


def prune(versions: Path, current: Path) -> None:
    """Remove the versions that no process uses: none has one mounted (a container's bind mount shows it as the
    mount's root in that process's mountinfo) or maps a file of it (a km running from it on the host). A build in
    progress beside this one (.new.*) is left alone."""
    old = [v for v in versions.iterdir() if v != current and not v.name.startswith(".new.")]
    if not old:
        return
    used = _paths_in_use()
    for v in old:
        tail = f"/{versions.name}/{v.name}"
        if not any(p.endswith(tail) or tail + "/" in p for p in used):
            shutil.rmtree(v, ignore_errors=True)


def _paths_in_use() -> set[str]:
    """Every mount root and mapped file of every process this user can see."""
    used: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                used.update(line.split()[3] for line in f)
            with open(f"/proc/{pid}/maps") as f:
                used.update(parts[5].strip() for parts in (line.split(maxsplit=5) for line in f) if len(parts) > 5)
        except (OSError, IndexError):
            continue
    return used


def build(top: Path, launcher: str | None) -> None:
    """The whole bundle in `top`: interpreter, stdlib, packages, libraries, launchers, then a first import."""
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    pyhome = top / "python"
    stdlib_dir = pyhome / "lib" / f"python{ver}"        # on sys.path under -I -S: km's packages live here
    dynload = stdlib_dir / "lib-dynload"
    for d in (top / "bin", top / "lib", pyhome / "bin", dynload):
        d.mkdir(parents=True)
    interpreter = Path(os.path.realpath(sys.executable))
    shutil.copy2(interpreter, pyhome / "bin" / "python3")
    elves = [pyhome / "bin" / "python3"]
    elves += copy_dynload(Path(sysconfig.get_path("platstdlib")) / "lib-dynload", dynload)
    zip_stdlib(Path(sysconfig.get_path("stdlib")), pyhome / "lib" / f"python{ver.replace('.', '')}.zip")
    elves += copy_packages(stdlib_dir)
    libs = copy_libraries(elves, top / "lib")
    make_launchers(top / "bin", launcher)
    strip_debug_info([pyhome / "bin" / "python3", top / "lib" / "libpython3.so", *elves[1:],
                      *(top / "lib").glob("libpython*")])
    import_everything(top)
    compileall.compile_dir(str(stdlib_dir), quiet=2, workers=1, ddir=None,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    manifest = {"python": sys.version.split()[0], "interpreter": str(interpreter), "libraries": sorted(libs),
                "source": source_revision(), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (top / "km-bundle.json").write_text(json.dumps(manifest, indent=1) + "\n")


def import_everything(top: Path) -> None:
    """The bundle's own Python imports every km module once, while the bundle is still writable: whatever km makes
    at its first run (cffi's out-of-line module of the KVM declarations) is made now, inside the bundle, and a
    module the trimmed stdlib lacks fails the build instead of a container."""
    code = ("import importlib, pkgutil\n"
            f"for top in {PACKAGES!r}:\n"
            "    pkg = importlib.import_module(top)\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
            "        if not m.name.endswith('__main__'):\n"
            "            importlib.import_module(m.name)\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(top)}
    r = subprocess.run([str(top / "lib" / "ld-linux-x86-64.so.2"), "--library-path", str(top / "lib"),
                        str(top / "python" / "bin" / "python3"), "-I", "-S", "-c", code], capture_output=True,
                       text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"build_bundle: the bundle cannot import km: {r.stderr.strip().splitlines()[-1:]}")
    leftovers = [p for p in (top / ".cache", ) if p.exists()]
    for p in leftovers:             # a cache written outside the packages has no place in the bundle
        shutil.rmtree(p)


def zip_stdlib(stdlib: Path, zip_path: Path) -> None:
    """The pure-Python standard library as bytecode only, stored uncompressed (imports read it in place)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for src in sorted(stdlib.rglob("*.py")):
            rel = src.relative_to(stdlib)
            if rel.parts[0] in STDLIB_LEFT_OUT or rel.parts[0].startswith(("config-", "lib-dynload")) \
                    or "__pycache__" in rel.parts or "tests" in rel.parts or "test" in rel.parts:
                continue
            try:
                code = compile(src.read_bytes(), f"<stdlib>/{rel}", "exec", dont_inherit=True)
            except SyntaxError:            # lib2to3-style test data that is not Python 3
                continue
            data = _bootstrap_external._code_to_hash_pyc(code, source_hash(src), checked=False)
            zf.writestr(str(rel.with_suffix(".pyc")), data)


def source_hash(src: Path) -> bytes:
    """The hash an unchecked-hash .pyc records (never compared at import: the bundle is never edited in place)."""
    from importlib.util import source_hash as hash_of
    return hash_of(src.read_bytes())


def copy_dynload(src: Path, dst: Path) -> list[Path]:
    """The stdlib's extension modules but those km never loads (DYNLOAD_LEFT_OUT); returns the copies, whose
    libraries the bundle must carry too."""
    kept = []
    for f in sorted(src.iterdir()):
        if f.suffix == ".so" and not DYNLOAD_LEFT_OUT.search(f.name):
            shutil.copy2(f, dst / f.name)
            kept.append(dst / f.name)
    return kept


def third_party_modules() -> set[str]:
    """Top-level non-stdlib modules km's packages import, closed over their distributions' requirements."""
    wanted: set[str] = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if any(str(path.relative_to(ROOT)).startswith(p) for p in LEFT_OUT):
                continue
            for node in ast.walk(ast.parse(path.read_bytes())):
                if isinstance(node, ast.Import):
                    wanted.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    wanted.add(node.module.split(".")[0])
    wanted -= set(sys.stdlib_module_names) | set(PACKAGES) | {"__future__"}
    return wanted


def distributions_for(modules: set[str]) -> list[metadata.Distribution]:
    """The installed distributions that provide `modules`, closed over their (non-extra) requirements; a module
    km imports that is not installed stops the build here rather than in a container."""
    by_module = metadata.packages_distributions()
    todo = sorted({d for m in modules for d in by_module.get(m, [])})
    missing = sorted(m for m in modules if m not in by_module)
    if missing:
        raise SystemExit(f"build_bundle: {', '.join(missing)}: imported by km but not installed in {sys.prefix}")
    seen: dict[str, metadata.Distribution] = {}
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        dist = metadata.distribution(name)
        seen[name.lower()] = dist
        for req in dist.requires or []:
            req_name, _, marker = req.partition(";")
            if "extra ==" in marker:
                continue
            todo.append(re.split(r"[\s<>=!~\[(]", req_name.strip(), maxsplit=1)[0])
    return list(seen.values())


def copy_packages(dst: Path) -> list[Path]:
    """km's packages (as they are in this tree) and the third-party ones they need; returns the ELF files."""
    elves = []
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dst / pkg, ignore=ignore)
    for left in LEFT_OUT:
        shutil.rmtree(dst / left)
    for dist in distributions_for(third_party_modules()):
        for rel in dist.files or []:
            if rel.parts[0].endswith((".dist-info", ".egg-info")) or "__pycache__" in rel.parts or rel.parts[0] == "..":
                continue
            src = Path(dist.locate_file(rel))
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    elves += [p for p in dst.rglob("*.so") if "lib-dynload" not in p.parts]
    return elves


def copy_libraries(elves: list[Path], libdir: Path) -> set[str]:
    """Every library the ELF files need (per the host's ldd), the loader and EXTRA_LIBS, under their sonames."""
    found: dict[str, str] = {}
    for elf in elves:
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = re.match(r"\s*(\S+) => (/\S+)", line) or re.match(r"\s*((/\S+))\s+\(", line)
            if m:
                found[os.path.basename(m.group(1))] = m.group(2)
    for extra in EXTRA_LIBS:
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64"):
            if os.path.exists(f"{d}/{extra}"):
                found.setdefault(extra, f"{d}/{extra}")
                break
    if "ld-linux-x86-64.so.2" not in found:
        raise SystemExit("build_bundle: no ld-linux-x86-64.so.2 found (is this a glibc x86-64 host?)")
    for soname, path in found.items():
        shutil.copy2(os.path.realpath(path), libdir / soname)
    return set(found)


def strip_debug_info(files: list[Path]) -> None:
    """pyenv's interpreter carries its debug info (libpython alone is 23 MB of 28): the bundle does not need it."""
    strip = shutil.which("strip")
    present = [str(f) for f in files if f.exists() and not f.is_symlink()]
    if strip and present:
        subprocess.run([strip, "--strip-debug", *present], check=True)


def make_launchers(bindir: Path, prebuilt: str | None) -> None:
    """One static launcher (it must run in an image without a libc), hard-linked under every entry point's name."""
    first = bindir / ENTRY_POINTS[0]
    if prebuilt:
        shutil.copy2(prebuilt, first)
    else:
        cc = shutil.which("musl-gcc") or shutil.which("gcc")
        if cc is None:
            raise SystemExit("build_bundle: no C compiler for the launcher (bash tools/install.sh installs musl-gcc)")
        flags = ["-static", "-O2", "-s"]
        subprocess.run([cc, *flags, "-o", str(first), str(ROOT / "tools" / "bundle" / "launcher.c")], check=True)
    for name in ENTRY_POINTS[1:]:
        os.link(first, bindir / name)


def source_revision() -> str:
    """What the bundle was built from, for km-bundle.json ("unknown" outside a git checkout)."""
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return rev or "unknown"


if __name__ == "__main__":
    main()
