#!/usr/bin/env bash
# Installs what tests/integration/test_dap_vscode_e2e.py needs, using only the Debian and npm registries:
# Chromium, iproute2 (`ip`, to bring up loopback in the test's namespace) and util-linux (`unshare`) from Debian;
# vscode-extension's own npm packages (vsce, puppeteer-core); code-server from npm under
# vscode-extension/test-e2e/.code-server. tools/install.sh runs it. Idempotent: a second run only checks.
#  - code-server 4.100.x runs on node 20 (its engines field says node 20; later lines want node 22). Its
#    postinstall builds native modules (kerberos, native-keymap, node-pty...) with headers from Debian and, run
#    as root, refuses to start without --unsafe-perm (npm 11 warns it does not know that option: harmless);
#    node-pty's runs `npx node-gyp`, hence npm_config_yes.
#  - @vscode/ripgrep downloads rg from GitHub in its postinstall unless its download cache holds the archive, so
#    the cache is filled with Debian's ripgrep.
set -euo pipefail
cd "$(dirname "$0")"
CODE_SERVER_VERSION=4.100.3
RIPGREP_PACKAGE=1.15.11          # @vscode/ripgrep in code-server's lib/vscode
RIPGREP_RELEASE=v13.0.0-10       # the release that package's postinstall asks for
APT_PACKAGES="chromium iproute2 util-linux ripgrep libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev"

missing=""
for p in $APT_PACKAGES; do   # (dpkg -s also succeeds for a removed package whose config files remain)
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -d ../node_modules/puppeteer-core ] || [ ! -d ../node_modules/@vscode/vsce ]; then
  (cd .. && npm ci --no-audit --no-fund)
fi

installed() {
  node -p "require('./.code-server/node_modules/code-server/package.json').version" 2>/dev/null || true
}
if [ "$(installed)" != "$CODE_SERVER_VERSION" ] || [ ! -x .code-server/node_modules/.bin/code-server ]; then
  cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-$RIPGREP_PACKAGE"
  mkdir -p "$cache"
  archive="$cache/ripgrep-$RIPGREP_RELEASE-x86_64-unknown-linux-musl.tar.gz"
  [ -s "$archive" ] || tar -C /usr/bin -czf "$archive" rg
  mkdir -p .code-server
  # Its own project root: without a package.json here npm would install into vscode-extension/ above.
  [ -f .code-server/package.json ] ||
    echo '{"private": true, "description": "code-server for the km-debug e2e test"}' > .code-server/package.json
  (cd .code-server && npm_config_yes=true npm install --unsafe-perm --no-audit --no-fund --no-save \
    "code-server@$CODE_SERVER_VERSION")
  [ "$(installed)" = "$CODE_SERVER_VERSION" ] || { echo "code-server $CODE_SERVER_VERSION did not install" >&2; exit 1; }
fi
echo "code-server $CODE_SERVER_VERSION: $(pwd)/.code-server/node_modules/.bin/code-server"
