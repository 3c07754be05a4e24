# Sourced by ./dev, .ci/run and stack/setup.sh: puts the project's tools first on PATH (Node.js 24 from the
# cache when the machine's node is older, the Temporal CLI, the Kubernetes binaries, node_modules/.bin).
TIDEPOOL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIDEPOOL_CACHE="${TIDEPOOL_CACHE:-$TIDEPOOL_ROOT/.cache}"
if [[ -x "$TIDEPOOL_CACHE/node/bin/node" ]]; then PATH="$TIDEPOOL_CACHE/node/bin:$PATH"; fi
PATH="$TIDEPOOL_CACHE/bin:$TIDEPOOL_ROOT/node_modules/.bin:$PATH"
export PATH TIDEPOOL_ROOT TIDEPOOL_CACHE
