"""OCI bundles for km-runtime tests: `runc spec`'s own config.json, a rootfs holding given files, and km-runtime
(from the test's km bundle) driving runc directly, the way an engine would, with a private runc root."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

_ids = itertools.count()


def make_oci_bundle(where: Path, files: dict[str, str | Path], args: list[str], env: list[str] | None = None,
                    mounts: list[dict] | None = None, rlimits: list[dict] | None = None,
                    annotations: dict[str, str] | None = None) -> Path:
    bundle = where / f"bundle{next(_ids)}"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    for inside, src in files.items():
        dst = rootfs / inside.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    config = json.loads((bundle / "config.json").read_text())
    process = config["process"]
    process["terminal"] = False
    process["args"] = args
    process["env"] = process["env"] + list(env or [])
    if rlimits is not None:
        process["rlimits"] = rlimits
    config["root"]["readonly"] = False
    config["mounts"] += mounts or []
    config["annotations"] = annotations or {}
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle


def runtime_env(km_bundle: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env.update(KM_RUNTIME_BUNDLE=str(km_bundle), KM_RUNTIME_CONFIG="/nonexistent", **extra)
    return env


def km_runtime(km_bundle: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
               input: str | None = None, output: Path | None = None) -> subprocess.CompletedProcess:
    """The bundle's bin/km-runtime ARGS (what an engine runs), to completion, text output. With `output`, the
    output goes to that file instead (after `create`, the container's process keeps the runtime's stdio)."""
    argv = [str(km_bundle / "bin" / "km-runtime"), *args]
    env = env or runtime_env(km_bundle)
    if output is None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    with open(output, "w") as out:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout, env=env)
