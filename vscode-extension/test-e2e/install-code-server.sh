#!/usr/bin/env bash
# Installs what tests/integration/test_dap_vscode_e2e.py needs: Chromium (Debian) and code-server (npm) under
# vscode-extension/test-e2e/.code-server, using only the Debian and npm registries. Optional: the test is skipped
# without them. Takes a few minutes (code-server builds native modules).
#  - code-server 4.99.4 is the last line that runs on node 20; its postinstall needs --unsafe-perm and headers
#    for kerberos, native-keymap and keytar; node-pty's postinstall runs `npx node-gyp`, hence npm_config_yes.
#  - @vscode/ripgrep downloads rg from GitHub in its postinstall unless its download cache holds the archive, so
#    the cache is filled with Debian's ripgrep.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium ripgrep libkrb5-dev libx11-dev \
  libxkbfile-dev libsecret-1-dev >/dev/null
RIPGREP_PACKAGE=1.15.11          # @vscode/ripgrep in code-server 4.99.4's lib/vscode
RIPGREP_RELEASE=v13.0.0-10       # the release that package's postinstall asks for
cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-$RIPGREP_PACKAGE"
mkdir -p "$cache"
tar -C /usr/bin -czf "$cache/ripgrep-$RIPGREP_RELEASE-x86_64-unknown-linux-musl.tar.gz" rg
mkdir -p .code-server
cd .code-server
# Its own project root: without a package.json here npm would install into vscode-extension/ above.
[ -f package.json ] || echo '{"private": true, "description": "code-server for the km-debug e2e test"}' > package.json
npm_config_yes=true npm install --unsafe-perm --no-audit --no-fund --no-save code-server@4.99.4
echo "code-server: $(pwd)/node_modules/.bin/code-server"
