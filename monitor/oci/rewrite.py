"""The config rewrite that puts a container's process under km: the km bundle mounted read-only at /opt/km,
/dev/kvm among the devices with its cgroup allow rule, process.args wrapped with km, rlimits clamped to what
this host lets the runtime grant. Everything else in the config is the engine's and stays as it was."""
from __future__ import annotations

import os
import stat

from . import jsonio
from .errors import RuntimeProblem
from .payload import ContainerFs, find_executable, script_interpreter
from .settings import ContainerOptions, HostSettings

# What km runs as a program: static, static-pie and dynamic ELF (a dynamic one with the image's own PT_INTERP
# loader and libraries, which km maps from the container's filesystem; the bundle's libraries at /opt/km/lib are
# only ever loaded by km's own ld.so). A #! script is run as the kernel would: km runs its interpreter (when that
# is one of these) with the script's path as an argument.
KM_RUNS = ("static", "static-pie", "dynamic")
# An engine's init (podman --init, docker --init, tini) stays native and the command after its `--` is wrapped:
# catatonit needs signalfd, which km does not serve.
INITS = ("/run/podman-init", "/dev/init", "/sbin/docker-init", "/usr/libexec/podman/catatonit", "/tini",
         "/sbin/tini", "/usr/bin/tini")
CAP_SYS_RESOURCE = 24


def load_json(path: str) -> dict:
    """A config.json or --process file; RuntimeProblem naming the file when it is missing or not JSON."""
    try:
        with open(path) as f:
            return jsonio.loads(f.read())
    except FileNotFoundError:
        raise RuntimeProblem(path, "no such file (not an OCI bundle?)") from None
    except (OSError, ValueError) as e:
        raise RuntimeProblem(path, f"unreadable ({e})") from None


def write_json(path: str, data: dict) -> None:
    """Atomically (the engine may read it back at any time)."""
    tmp = f"{path}.km-runtime.tmp"
    with open(tmp, "w") as f:
        f.write(jsonio.dumps(data))
    os.replace(tmp, path)


def rewrite_bundle(bundle: str, host: HostSettings) -> list[str]:
    """create/run: rewrites BUNDLE/config.json in place; returns what it did (for the trace)."""
    config_path = os.path.join(bundle, "config.json")
    config = load_json(config_path)
    process = config.get("process") or {}
    notes = clamp_rlimits(process)
    opts = ContainerOptions(config.get("annotations") or {}, process.get("env") or [])
    if opts.wrap:
        check_km_bundle(host)
        kvm = kvm_device(host)
        add_mount(config, host)
        add_kvm(config, host.kvm_device, kvm)
        root = (config.get("root") or {}).get("path", "rootfs")
        fs = ContainerFs(os.path.join(bundle, root), config.get("mounts") or [])
        notes += wrap_process(process, fs, opts, host)
    else:
        notes.append("km.wrap=off: unchanged")
    write_json(config_path, config)
    return notes


def rewrite_exec(process_file: str, bundle: str, host: HostSettings) -> list[str]:
    """exec --process FILE: the new process is wrapped like the container's (whose config create rewrote)."""
    config = load_json(os.path.join(bundle, "config.json"))
    process = load_json(process_file)
    notes = clamp_rlimits(process)
    opts = ContainerOptions(config.get("annotations") or {}, process.get("env") or [])
    mounted = any(m.get("destination") == host.mount_point for m in config.get("mounts") or [])
    if opts.wrap and mounted:
        root = (config.get("root") or {}).get("path", "rootfs")
        fs = ContainerFs(os.path.join(bundle, root), config.get("mounts") or [])
        notes += wrap_process(process, fs, opts, host)
    write_json(process_file, process)
    return notes


def check_km_bundle(host: HostSettings) -> None:
    """Refused here, in one line, rather than as a container whose /opt/km/bin/km does not exist."""
    if not os.path.isfile(os.path.join(host.km_bundle, "bin", "km")):
        raise RuntimeProblem(host.km_bundle, "no km bundle there (build it with tools/build-bundle.sh, or set "
                                             "KM_RUNTIME_BUNDLE)")


def kvm_device(host: HostSettings) -> os.stat_result:
    """The host's KVM device node (its numbers go into the config); refused when it is missing or not a device."""
    try:
        st = os.stat(host.kvm_device)
    except OSError:
        raise RuntimeProblem(host.kvm_device, "no such device on this host (is the kvm module loaded?)") from None
    if not stat.S_ISCHR(st.st_mode):
        raise RuntimeProblem(host.kvm_device, "not a character device")
    return st


def add_mount(config: dict, host: HostSettings) -> None:
    """The km bundle read-only at the mount point (once: an engine may hand the same config to create twice)."""
    mounts = config.setdefault("mounts", [])
    if not any(m.get("destination") == host.mount_point for m in mounts):
        mounts.append({"destination": host.mount_point, "type": "bind", "source": os.path.realpath(host.km_bundle),
                       "options": ["rbind", "ro", "nosuid", "nodev"]})


def add_kvm(config: dict, path: str, st: os.stat_result) -> None:
    """/dev/kvm as 0666 (a --user container can open it) and allowed by the devices cgroup."""
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    linux = config.setdefault("linux", {})
    devices = linux.setdefault("devices", [])
    if not any(d.get("path") == "/dev/kvm" for d in devices):
        devices.append({"path": "/dev/kvm", "type": "c", "major": major, "minor": minor, "fileMode": 0o666,
                        "uid": 0, "gid": 0})
    rules = linux.setdefault("resources", {}).setdefault("devices", [])
    if not any(r.get("allow") and r.get("major") == major and r.get("minor") == minor for r in rules):
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})


def wrap_process(process: dict, fs: ContainerFs, opts: ContainerOptions, host: HostSettings) -> list[str]:
    """process.args as km's command line, when km runs what args[0] is (else unchanged); what was done."""
    args = list(process.get("args") or [])
    if not args:
        raise RuntimeProblem("process.args", "empty (the image has no entrypoint and none was given)")
    km = f"{host.mount_point}/bin/km"
    head: list[str] = []
    if args[0] in INITS and "--" in args:
        cut = args.index("--") + 1
        head, args = args[:cut], args[cut:]
        if not args:
            return ["init without a command: unchanged"]
    if args[0] == km or args[0].startswith(host.mount_point + "/"):
        return ["already under km"]
    cwd = process.get("cwd") or "/"
    exe = find_executable(fs, args[0], process.get("env") or [], cwd)
    argv = args
    if exe.kind == "script":
        found = script_interpreter(fs, exe, cwd)
        if found is None:
            return [f"{exe.path}: script without an interpreter in the container: left native"]
        exe, interp_args = found
        argv = [*interp_args, *args[1:]]
    if exe.kind not in KM_RUNS:
        return [f"{exe.path}: {exe.kind}: left native"]
    if opts.verbose:
        env = [e for e in process.get("env") or [] if not e.startswith("KM_VERBOSE=")]
        process["env"] = env + [f"KM_VERBOSE={opts.verbose}"]
    process["args"] = [*head, km, *opts.km_options(), f"--argv0={argv[0]}", exe.path, *argv[1:]]
    return [f"{args} -> {process['args']}"]


def clamp_rlimits(process: dict) -> list[str]:
    """Without CAP_SYS_RESOURCE runc cannot raise a hard limit above the runtime's own (podman asks for
    nofile 1048576): each is lowered to what this process holds, which is what the container could get anyway."""
    if has_capability(CAP_SYS_RESOURCE):
        return []
    import resource
    notes = []
    for limit in process.get("rlimits") or []:
        which = getattr(resource, limit.get("type", ""), None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY:
            continue
        if limit.get("hard", 0) > hard or limit.get("soft", 0) > hard:
            notes.append(f"{limit['type']} {limit.get('soft')}:{limit.get('hard')} -> {min(limit.get('soft', 0), hard)}"
                         f":{hard}")
            limit["hard"] = min(limit.get("hard", 0), hard)
            limit["soft"] = min(limit.get("soft", 0), limit["hard"])
    return notes


def has_capability(bit: int) -> bool:
    """Capability `bit` in this process's effective set (when /proc cannot tell, assume it: change nothing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return True
