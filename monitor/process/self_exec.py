"""How km starts itself again (execve of a new payload): the one command every re-execution uses.

From a source tree or an installed package, that is the interpreter running km. From a relocatable bundle
(tools/build-bundle.sh) it is the bundle's own launcher, because the bundle's interpreter must be loaded by the
bundle's ld.so and libraries: executing it through the kernel would load whatever loader the container image has.
"""
from __future__ import annotations

import os
import sys

BUNDLE_MARKER = "km-bundle.json"        # at the bundle's top; the interpreter's prefix is BUNDLE/python
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = f"import sys; sys.path.insert(0, {_SOURCE_ROOT!r}); from monitor.cli import main; main(sys.argv[1:])"


def bundle_root() -> str | None:
    """The bundle km runs from, or None when it runs from a source tree or an installed package."""
    top = os.path.dirname(sys.prefix)
    return top if os.path.exists(os.path.join(top, BUNDLE_MARKER)) else None


def km_command() -> list[str]:
    """argv that starts km (km's options and the payload follow); its first element is the file to execute."""
    top = bundle_root()
    if top is not None:
        return [os.path.join(top, "bin", "km")]
    return [sys.executable, "-c", _BOOT, "km"]
