"""monitor.syscalls"""
