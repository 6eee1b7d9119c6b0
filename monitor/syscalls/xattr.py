"""Extended attributes (getxattr family), forwarded to the host: ls -l asks for ACLs and SELinux labels through
them, CPython's os.getxattr/os.setxattr/os.listxattr call them directly."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .args import addr_of, buf_in, buf_out, fd_arg, path_arg
from .dispatch import syscall
from .host import host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread


def _target(ctx: VcpuThread, name: str, target: int):
    """(host argument, object to keep alive): a path for the path forms, an fd for the f- forms."""
    if name.startswith("f"):
        return fd_arg(target), None
    path = path_arg(ctx, target)
    return addr_of(path), path


def _register_get(name: str) -> None:
    nr = NR[name]

    def handler(ctx: VcpuThread, target: int, attr: int, value: int, size: int) -> int:
        host, _keep = _target(ctx, name, target)      # _keep: the path, alive until the call returns
        attr_name = path_arg(ctx, attr)
        return host_syscall(nr, host, addr_of(attr_name), buf_out(ctx, value, size) if size else 0, size)
    handler.__name__ = f"sys_{name}"
    syscall(name)(handler)


def _register_set(name: str) -> None:
    nr = NR[name]

    def handler(ctx: VcpuThread, target: int, attr: int, value: int, size: int, flags: int) -> int:
        host, _keep = _target(ctx, name, target)      # _keep: the path, alive until the call returns
        attr_name = path_arg(ctx, attr)
        return host_syscall(nr, host, addr_of(attr_name), buf_in(ctx, value, size) if size else 0, size, flags)
    handler.__name__ = f"sys_{name}"
    syscall(name)(handler)


def _register_list(name: str) -> None:
    nr = NR[name]

    def handler(ctx: VcpuThread, target: int, names: int, size: int) -> int:
        host, _keep = _target(ctx, name, target)      # _keep: the path, alive until the call returns
        return host_syscall(nr, host, buf_out(ctx, names, size) if size else 0, size)
    handler.__name__ = f"sys_{name}"
    syscall(name)(handler)


def _register_remove(name: str) -> None:
    nr = NR[name]

    def handler(ctx: VcpuThread, target: int, attr: int) -> int:
        host, _keep = _target(ctx, name, target)      # _keep: the path, alive until the call returns
        attr_name = path_arg(ctx, attr)
        return host_syscall(nr, host, addr_of(attr_name))
    handler.__name__ = f"sys_{name}"
    syscall(name)(handler)


for _prefix in ("", "l", "f"):
    _register_get(f"{_prefix}getxattr")
    _register_set(f"{_prefix}setxattr")
    _register_list(f"{_prefix}listxattr")
    _register_remove(f"{_prefix}removexattr")
