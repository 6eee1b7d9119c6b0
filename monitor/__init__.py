"""km: the virtual machine monitor (ELF loading, guest memory, vCPUs, syscalls, signals, processes)."""
__version__ = "0.1.0"
