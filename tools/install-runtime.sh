#!/usr/bin/env bash
# Installs km-runtime for container engines: builds the km bundle from this repository into /opt/km (or
# --dest DIR) and, with --delegate RUNTIME, records which OCI runtime km-runtime hands commands to (default: runc
# on PATH). Engines are then pointed at DIR/bin/km-runtime (README, "Containers"). Run it again after an update:
# DIR becomes a symlink to the new version (tools/build_bundle.py install) and running containers keep theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=/opt/km delegate=""
usage() { echo "usage: bash tools/install-runtime.sh [--dest DIR] [--delegate RUNTIME]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) [ $# -ge 2 ] || usage; dest="$2"; shift 2 ;;
    --delegate) [ $# -ge 2 ] || usage; delegate="$2"; shift 2 ;;
    *) usage ;;
  esac
done
command -v runc >/dev/null || [ -n "$delegate" ] || echo "install-runtime: warning: no runc on PATH (apt-get install runc)" >&2
bash tools/build-bundle.sh --dest "$dest"
if [ -n "$delegate" ]; then
  mkdir -p "$dest/etc"
  "${KM_BUNDLE_PYTHON:-python3}" -c 'import json, sys; print(json.dumps({"delegate": sys.argv[1]}))' "$delegate" \
    > "$dest/etc/km-runtime.json"
fi
"$dest/bin/km" --version
echo "km-runtime: $dest/bin/km-runtime (podman --runtime $dest/bin/km-runtime; ctr --runc-binary; docker: README)"
