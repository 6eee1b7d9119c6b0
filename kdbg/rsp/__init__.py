"""kdbg.rsp"""
