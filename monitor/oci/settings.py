"""km-runtime's settings: the host's (which delegate, where the km bundle is: from KM_RUNTIME_* variables, else
a JSON file, else defaults) and each container's (annotations `km.*` or the container's KM_* environment).
Engines start runtimes with an environment of their own (podman gives conmon a fixed one), so the file is the
dependable place: $KM_RUNTIME_CONFIG, else BUNDLE/etc/km-runtime.json (kept across bundle rebuilds), else
/etc/km/runtime.json. Keys: delegate, km_bundle, kvm_device, trace."""
from __future__ import annotations

import os

from . import jsonio
from .errors import RuntimeProblem

CONFIG_FILE = "/etc/km/runtime.json"
BUNDLE_CONFIG = "etc/km-runtime.json"
MOUNT_POINT = "/opt/km"                 # where the km bundle appears inside every container
# per-container options: annotation -> container environment variable (the annotation wins)
CONTAINER_OPTIONS = {"km.wrap": "KM_WRAP", "km.verbose": "KM_VERBOSE", "km.gdb_listen": "KM_GDB_LISTEN",
                     "km.coredump": "KM_COREDUMP"}
OFF = ("0", "off", "no", "false")


class HostSettings:
    """delegate: the OCI runtime every command ends in (runc); km_bundle: the bundle mounted into containers;
    kvm_device: the device node given to them; trace: a file each rewrite is logged to (or None)."""

    def __init__(self, delegate: str, km_bundle: str, kvm_device: str = "/dev/kvm",
                 mount_point: str = MOUNT_POINT, trace: str | None = None) -> None:
        self.delegate, self.km_bundle, self.kvm_device = delegate, km_bundle, kvm_device
        self.mount_point, self.trace = mount_point, trace


def host_settings() -> HostSettings:
    """KM_RUNTIME_{DELEGATE,BUNDLE,KVM,TRACE} in the environment, else the config file, else the defaults."""
    from ..process.self_exec import bundle_root
    own = bundle_root()
    paths = [os.environ["KM_RUNTIME_CONFIG"]] if "KM_RUNTIME_CONFIG" in os.environ else \
        [p for p in (own and os.path.join(own, BUNDLE_CONFIG), CONFIG_FILE) if p]
    conf = {}
    for path in paths:
        try:
            with open(path) as f:
                conf = jsonio.loads(f.read())
            break
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise RuntimeProblem(path, f"unreadable runtime configuration ({e})") from None
    env = os.environ.get
    delegate = env("KM_RUNTIME_DELEGATE") or conf.get("delegate") or "runc"
    return HostSettings(delegate=delegate,
                        km_bundle=env("KM_RUNTIME_BUNDLE") or conf.get("km_bundle") or own or MOUNT_POINT,
                        kvm_device=env("KM_RUNTIME_KVM") or conf.get("kvm_device") or "/dev/kvm",
                        trace=env("KM_RUNTIME_TRACE") or conf.get("trace"))


def find_delegate(name: str) -> str:
    """The delegate's absolute path: engines start runtimes with a short PATH (containerd's shim: none of /usr/sbin)."""
    dirs = [""] if "/" in name else \
        (os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":")
    found = next((p for p in (os.path.join(d, name) for d in dirs if d or "/" in name)
                  if os.path.isfile(p) and os.access(p, os.X_OK)), None)
    if not found:
        raise RuntimeProblem(name, "delegate runtime not found (install runc, or set KM_RUNTIME_DELEGATE or "
                                   f"\"delegate\" in {CONFIG_FILE})")
    return found


class ContainerOptions:
    """wrap: run the process under km at all; verbose: KM_VERBOSE; gdb_port: km --gdb_listen on this port,
    listening on every address so a published port reaches it; coredump: where kmcore goes."""

    def __init__(self, annotations: dict[str, str], env: list[str]) -> None:
        envd = dict(e.split("=", 1) for e in env if "=" in e)
        value = {key: annotations.get(key, envd.get(var)) for key, var in CONTAINER_OPTIONS.items()}
        self.wrap = (value["km.wrap"] or "on").lower() not in OFF
        self.verbose = value["km.verbose"]
        self.coredump = value["km.coredump"] or None
        port = value["km.gdb_listen"]
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise RuntimeProblem("km.gdb_listen", f"{port!r} is not a port number (1..65535)")
        self.gdb_port = int(port) if port else None

    def km_options(self) -> list[str]:
        """km's options for these settings, placed before the payload on the wrapped command line."""
        opts = []
        if self.gdb_port is not None:
            opts += ["--gdb_listen", f"-g{self.gdb_port}", "--gdb_host", "0.0.0.0"]
        if self.coredump:
            opts.append(f"--coredump={self.coredump}")
        return opts
