"""A Python program with a long warm-up: it imports a heavy set of modules, then (with --snapshot) snapshots itself
through km's Python API and ends; every copy resumed from the snapshot goes on from there. Its first output line is
what bench/snapshot.py times."""
import sys

import asyncio  # noqa: F401
import decimal  # noqa: F401
import email.mime.multipart  # noqa: F401
import email.parser  # noqa: F401
import http.server  # noqa: F401
import json
import sqlite3  # noqa: F401
import xml.etree.ElementTree  # noqa: F401
import urllib.request  # noqa: F401
import argparse  # noqa: F401
import logging  # noqa: F401
import unittest  # noqa: F401

if "--snapshot" in sys.argv:
    from km import snapshots
    how = "resumed" if snapshots.take("warm", "after the imports") == snapshots.RESUMED else "taken"
else:
    how = "cold"
print(json.dumps({"ready": how, "modules": len(sys.modules)}), flush=True)
