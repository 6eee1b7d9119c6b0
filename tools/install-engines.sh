#!/usr/bin/env bash
# The container engines the container test tier (tools/test-containers.sh) and the benchmark drive: podman with
# runc (crun refuses this kind of host's hybrid cgroups), containerd with ctr and the runc.v2 shim, and Docker.
# Debian packages only; nothing is configured system-wide (the tests use private configs). Idempotent.
set -euo pipefail
PACKAGES="podman runc conmon containernetworking-plugins slirp4netns uidmap catatonit fuse-overlayfs containerd docker.io iptables"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $PACKAGES; do installed "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
