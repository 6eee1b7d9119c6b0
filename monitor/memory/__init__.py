"""The payload's memory: guest-physical chunks, page tables, VMAs, the files behind them, the vdso."""
