"""The debugger's view of a VM: the typed hooks the VMM calls, read-only and live Targets, watchpoints."""
