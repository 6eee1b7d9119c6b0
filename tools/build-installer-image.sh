#!/usr/bin/env bash
# Builds the km installer image (deploy/Containerfile: the km bundle, a static busybox, the node install script)
# with podman, locally: bash tools/build-installer-image.sh [TAG]  (default km-installer:latest). Push it where the
# nodes pull from, then kubectl apply -f deploy/km-installer.yaml. PODMAN may name another podman command line.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-km-installer:latest}"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
bash tools/build-bundle.sh --dest "$ctx/km" >/dev/null
cp /bin/busybox deploy/Containerfile deploy/containerd-km.toml deploy/install-on-node.sh "$ctx/"
${PODMAN:-podman} build -q -t "$tag" -f "$ctx/Containerfile" "$ctx"
