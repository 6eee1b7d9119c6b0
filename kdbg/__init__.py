"""kdbg: the debugger side of km: target contract, GDB stub, stop-the-world, core files, DAP bridge."""
