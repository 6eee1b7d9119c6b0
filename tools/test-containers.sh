#!/usr/bin/env bash
# The container tier: podman, containerd (ctr) and Docker running payloads through km-runtime (tests/containers/).
# Installs the engines if needed (tools/install-engines.sh); each engine gets private storage and configuration.
# Takes a few minutes (README, "Containers"). Arguments go to pytest, e.g. -k podman.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh --quiet
bash tools/install-engines.sh
KM_CONTAINER_TESTS=1 exec python3 -m pytest -q -p no:cacheprovider "$@" tests/containers
