"""km-runtime's config rewrite, checked on runc's own `runc spec` output: what is added (mount, device, cgroup
rule), how process.args are wrapped (static and dynamic ELF, #! scripts through their interpreter, inits), per-container options,
rlimit clamping, and that a second rewrite (podman regenerates and re-creates) changes nothing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.oci.cli import split_options, GLOBAL_VALUE_OPTIONS
from monitor.oci.errors import RuntimeProblem
from monitor.oci.rewrite import has_capability, rewrite_bundle, CAP_SYS_RESOURCE
from monitor.oci.settings import HostSettings

pytestmark = pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed (tools/install.sh)")


def spec_bundle(tmp_path: Path, args: list[str], **process) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True)
    config = json.loads((tmp_path / "config.json").read_text())
    config["process"]["args"] = args
    config["process"].update(process)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def rootfs_file(bundle: Path, path: str, content: bytes, link: str | None = None) -> None:
    dst = bundle / "rootfs" / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(content)
    dst.chmod(0o755)
    if link:
        (bundle / "rootfs" / link.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, bundle / "rootfs" / link.lstrip("/"))


@pytest.fixture
def host(tmp_path) -> HostSettings:
    km = tmp_path / "kmbundle"
    (km / "bin").mkdir(parents=True)
    (km / "bin" / "km").write_text("")
    return HostSettings(delegate="runc", km_bundle=str(km), kvm_device="/dev/null")


@pytest.fixture(scope="module")
def static_elf(payload) -> bytes:
    return Path(payload("run_hello.c", "musl")).read_bytes()


def rewritten(bundle: Path, host: HostSettings) -> dict:
    rewrite_bundle(str(bundle), host)
    return json.loads((bundle / "config.json").read_text())


def test_static_entrypoint_found_on_path_through_a_symlink(tmp_path, host, static_elf) -> None:
    bundle = spec_bundle(tmp_path / "b", ["app", "x"])
    rootfs_file(bundle, "/opt/app/app", static_elf, link="/usr/bin/app")
    config = rewritten(bundle, host)
    assert config["process"]["args"] == ["/opt/km/bin/km", "--argv0=app", "/opt/app/app", "x"]
    null = os.stat("/dev/null").st_rdev
    dev = {"path": "/dev/kvm", "type": "c", "major": os.major(null), "minor": os.minor(null), "fileMode": 0o666,
           "uid": 0, "gid": 0}
    assert dev in config["linux"]["devices"]
    assert {"allow": True, "type": "c", "major": os.major(null), "minor": os.minor(null), "access": "rwm"} \
        in config["linux"]["resources"]["devices"]
    assert {"destination": "/opt/km", "type": "bind", "source": os.path.realpath(host.km_bundle),
            "options": ["rbind", "ro", "nosuid", "nodev"]} in config["mounts"]
    assert rewritten(bundle, host) == config, "a second rewrite changes nothing"


def test_init_stays_native_and_its_command_is_wrapped(tmp_path, host, static_elf) -> None:
    bundle = spec_bundle(tmp_path / "b", ["/run/podman-init", "--", "/hello"])
    rootfs_file(bundle, "/hello", static_elf)
    assert rewritten(bundle, host)["process"]["args"] == ["/run/podman-init", "--", "/opt/km/bin/km",
                                                          "--argv0=/hello", "/hello"]


def test_dynamic_entrypoint_is_wrapped(tmp_path, host, payload) -> None:
    bundle = spec_bundle(tmp_path / "b", ["/prog", "x"])
    rootfs_file(bundle, "/prog", Path(payload("run_hello.c", "dynamic")).read_bytes())
    assert rewritten(bundle, host)["process"]["args"] == ["/opt/km/bin/km", "--argv0=/prog", "/prog", "x"]


def test_script_runs_its_interpreter_under_km_as_the_kernel_would(tmp_path, host, static_elf) -> None:
    """binfmt_script's argv: the interpreter as written, its one argument, the script's path as found on PATH."""
    bundle = spec_bundle(tmp_path / "b", ["app.py", "x"])
    rootfs_file(bundle, "/opt/bin/env", static_elf, link="/usr/bin/env")
    rootfs_file(bundle, "/usr/local/bin/app.py", b"#! /usr/bin/env  python3 -u \nprint()\n")
    assert rewritten(bundle, host)["process"]["args"] == ["/opt/km/bin/km", "--argv0=/usr/bin/env", "/opt/bin/env",
                                                          "python3 -u", "/usr/local/bin/app.py", "x"]


@pytest.mark.parametrize("first_line", [b"#!/no/such/interpreter\n", b"#!\n", b"#!/nested\n"])
def test_script_whose_interpreter_km_cannot_run_stays_native(first_line, tmp_path, host) -> None:
    bundle = spec_bundle(tmp_path / "b", ["/prog"])
    rootfs_file(bundle, "/prog", first_line + b"echo\n")
    rootfs_file(bundle, "/nested", b"#!/bin/sh\n")
    config = rewritten(bundle, host)
    assert config["process"]["args"] == ["/prog"]
    assert any(m["destination"] == "/opt/km" for m in config["mounts"]), "km is there for a later exec"


def test_container_options_from_annotations_and_environment(tmp_path, host, static_elf) -> None:
    bundle = spec_bundle(tmp_path / "b", ["/hello"], env=["PATH=/bin", "KM_COREDUMP=/cores/kmcore"])
    config = json.loads((bundle / "config.json").read_text())
    config["annotations"] = {"km.gdb_listen": "3333", "km.verbose": "syscall"}
    (bundle / "config.json").write_text(json.dumps(config))
    rootfs_file(bundle, "/hello", static_elf)
    config = rewritten(bundle, host)
    assert config["process"]["args"] == ["/opt/km/bin/km", "--gdb_listen", "-g3333", "--gdb_host", "0.0.0.0",
                                         "--coredump=/cores/kmcore", "--argv0=/hello", "/hello"]
    assert "KM_VERBOSE=syscall" in config["process"]["env"]


def test_wrap_off_leaves_the_process_alone(tmp_path, host, static_elf) -> None:
    bundle = spec_bundle(tmp_path / "b", ["/hello"], env=["KM_WRAP=off"])
    rootfs_file(bundle, "/hello", static_elf)
    config = rewritten(bundle, host)
    assert config["process"]["args"] == ["/hello"] and not any(m["destination"] == "/opt/km"
                                                                for m in config["mounts"])


def test_entrypoint_in_a_bind_mounted_volume(tmp_path, host, static_elf) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "prog").write_bytes(static_elf)
    bundle = spec_bundle(tmp_path / "b", ["/app/prog"])
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"].append({"destination": "/app", "type": "bind", "source": str(app), "options": ["rbind"]})
    (bundle / "config.json").write_text(json.dumps(config))
    (bundle / "rootfs").mkdir()
    assert rewritten(bundle, host)["process"]["args"][-1] == "/app/prog"


def test_rlimits_above_the_runtimes_own_are_clamped(tmp_path, host, static_elf) -> None:
    import resource
    bundle = spec_bundle(tmp_path / "b", ["/hello"],
                         rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1 << 40, "soft": 1 << 40}])
    rootfs_file(bundle, "/hello", static_elf)
    limit = rewritten(bundle, host)["process"]["rlimits"][0]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if has_capability(CAP_SYS_RESOURCE) or hard == resource.RLIM_INFINITY:
        assert limit["hard"] == 1 << 40
    else:
        assert limit == {"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard}


def test_a_text_file_entrypoint_is_refused(tmp_path, host) -> None:
    bundle = spec_bundle(tmp_path / "b", ["/notes"])
    rootfs_file(bundle, "/notes", b"hello\n")
    with pytest.raises(RuntimeProblem, match="/notes: not an ELF executable"):
        rewrite_bundle(str(bundle), host)


def test_global_options_as_podman_and_containerd_pass_them() -> None:
    podman = ["--log-format=json", "--log", "/run/x/oci-log", "create", "--bundle", "/b", "--pid-file", "/p", "id"]
    opts, rest, _ = split_options(podman, GLOBAL_VALUE_OPTIONS)
    assert opts == {"log-format": "json", "log": "/run/x/oci-log"} and rest[0] == "create"
    shim = ["--root", "/run/containerd/runc/default", "--log", "/b/log.json", "--log-format", "json",
            "--systemd-cgroup", "delete", "id"]
    opts, rest, _ = split_options(shim, GLOBAL_VALUE_OPTIONS)
    assert opts["root"] == "/run/containerd/runc/default" and "systemd-cgroup" in opts and rest == ["delete", "id"]


def test_runtime_start_up_imports_nothing_heavy() -> None:
    """Every container start pays km-runtime's imports: none of the modules that cost milliseconds each."""
    import sys
    root = Path(__file__).resolve().parents[2]
    code = (f"import sys; sys.path.insert(0, {str(root)!r})\n"
            "from monitor.oci import cli, rewrite, settings\n"
            "print(sorted(m for m in ('re', 'typing', 'json', 'enum', 'dataclasses', 'collections', 'elftools',"
            " 'cffi') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
