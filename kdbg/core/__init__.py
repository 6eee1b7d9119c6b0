"""kdbg.core: ELF core files for x86-64 Linux payloads.

layouts.py declares the note and header layouts, writer.py turns any kdbg.target.Target into a core file
(`write_core`), reader.py serves a core file as a kdbg.target.Target (`CoreTarget`).
"""
