# Runs in the installer container (busybox sh) with the node's / at /host: copies the km bundle to
# /host/opt/km (beside, then renamed: containers running km keep their copy), adds the containerd handler "km" if
# it is not there, restarts containerd when asked (KM_RESTART_CONTAINERD=1; needs hostPID), then sleeps so the
# DaemonSet stays Ready. Every step is idempotent.
set -eu
B=/bin/busybox
HOST=${KM_HOST_ROOT:-/host}
$B mkdir -p "$HOST/opt"
$B rm -rf "$HOST/opt/.km.new"
$B cp -a /km "$HOST/opt/.km.new"
if [ -e "$HOST/opt/km/etc/km-runtime.json" ]; then
  $B mkdir -p "$HOST/opt/.km.new/etc" && $B cp "$HOST/opt/km/etc/km-runtime.json" "$HOST/opt/.km.new/etc/"
fi
$B rm -rf "$HOST/opt/.km.old"
[ -e "$HOST/opt/km" ] && $B mv "$HOST/opt/km" "$HOST/opt/.km.old"
$B mv "$HOST/opt/.km.new" "$HOST/opt/km"
$B rm -rf "$HOST/opt/.km.old"
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
