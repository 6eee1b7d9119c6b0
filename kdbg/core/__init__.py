"""kdbg.core"""
