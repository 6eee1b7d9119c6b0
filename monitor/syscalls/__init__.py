"""Syscalls served by km, one module per family; `table` imports every family, which registers its handlers.

The package itself imports nothing, so that the generated numbers (numbers.py) and the dispatcher can be imported
from below the families (monitor/signals/delivery.py restarts calls by number) without importing the families first."""
