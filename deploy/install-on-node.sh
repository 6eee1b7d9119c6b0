# Runs in the installer container (busybox sh) with the node's / at /host: copies the km bundle to a new version
# /host/opt/.km.versions/<version> and switches the /host/opt/km symlink to it in one rename (containers running
# km keep the version they mounted; tools/build_bundle.py's install does the same), adds the containerd handler "km"
# if it is not there, restarts containerd when asked (KM_RESTART_CONTAINERD=1; needs hostPID), then sleeps so the
# DaemonSet stays Ready. Old versions are removed only when the node's processes are visible (hostPID) and none
# mounts or maps them. Every step is idempotent. KM_HOST_ROOT and KM_BUNDLE_SOURCE (default /km) are for tests.
set -eu
B=/bin/busybox
HOST=${KM_HOST_ROOT:-/host}
VERSIONS="$HOST/opt/.km.versions"
V=$($B date -u +%Y%m%dT%H%M%S)-$$
$B mkdir -p "$VERSIONS"
$B rm -rf "$VERSIONS/.new.$V"
$B cp -a "${KM_BUNDLE_SOURCE:-/km}" "$VERSIONS/.new.$V"
if [ -e "$HOST/opt/km/etc/km-runtime.json" ]; then
  $B mkdir -p "$VERSIONS/.new.$V/etc" && $B cp "$HOST/opt/km/etc/km-runtime.json" "$VERSIONS/.new.$V/etc/"
fi
$B mv "$VERSIONS/.new.$V" "$VERSIONS/$V"
if [ -d "$HOST/opt/km" ] && [ ! -L "$HOST/opt/km" ]; then
  $B mv "$HOST/opt/km" "$VERSIONS/$V-before-versions"
fi
$B ln -sfn ".km.versions/$V" "$HOST/opt/.km.link"
$B mv -T "$HOST/opt/.km.link" "$HOST/opt/km"
if [ "$($B stat -L -c %d:%i /proc/1/root/ 2>/dev/null)" = "$($B stat -L -c %d:%i "$HOST/")" ]; then
  for old in "$VERSIONS"/*; do
    name=${old##*/}
    [ "$name" = "$V" ] && continue
    if ! $B cat /proc/[0-9]*/mountinfo /proc/[0-9]*/maps 2>/dev/null | $B grep -q "/.km.versions/$name\( \|/\|$\)"; then
      $B rm -rf "$old"
    fi
  done
fi
echo "km-installer: bundle installed at /opt/km"
CONF="$HOST/etc/containerd/config.toml"
if [ -e "$CONF" ] && ! $B grep -q 'runtimes.km]' "$CONF"; then
  $B cat /containerd-km.toml >> "$CONF"
  echo "km-installer: containerd handler km added to /etc/containerd/config.toml"
  if [ "${KM_RESTART_CONTAINERD:-0}" = 1 ]; then
    $B nsenter -t 1 -m -u -i -n -p -- systemctl restart containerd && echo "km-installer: containerd restarted"
  fi
fi
[ "${KM_INSTALL_ONCE:-0}" = 1 ] && exit 0
exec $B sleep 2147483647
