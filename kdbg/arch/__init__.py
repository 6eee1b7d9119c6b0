"""kdbg.arch"""
