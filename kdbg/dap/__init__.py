"""kdbg.dap"""
