#!/usr/bin/env bash
# Builds the peer CNI IPAM plugins that the IPAM benchmark compares Tidepool with, host-local (the CNI
# reference IPAM) and Whereabouts, from the releases pinned in bench/peers/go.mod into the ignored cache
# (.cache/peers/bin), and copies the Whereabouts CRDs from the same module into .cache/peers/crds.
# A build is reused while its stamp matches go.mod and go.sum.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${TIDEPOOL_CACHE:-$ROOT/.cache}/peers"
BIN="$OUT/bin"
CRDS="$OUT/crds"
MOD="$ROOT/bench/peers"
PLUGINS_MOD=github.com/containernetworking/plugins
WB_MOD=github.com/k8snetworkplumbingwg/whereabouts

modversion() { # the version go.mod requires of module $1
  sed -n "s#^require $1 \(v[^ ]*\)\$#\1#p;s#^\t$1 \(v[^ ]*\)\$#\1#p" "$MOD/go.mod" | head -1
}
PLUGINS_VERSION="$(modversion "$PLUGINS_MOD")"
WB_VERSION="$(modversion "$WB_MOD")"
[[ -n "$PLUGINS_VERSION" && -n "$WB_VERSION" ]] ||
  { echo "build-peers: cannot read the $PLUGINS_MOD and $WB_MOD versions from $MOD/go.mod" >&2; exit 1; }
WHAT="host-local $PLUGINS_VERSION, whereabouts $WB_VERSION"
STAMP="$BIN/.peers-$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi

if [[ -f "$STAMP" && -x "$BIN/host-local" && -x "$BIN/whereabouts" ]] && compgen -G "$CRDS/*.yaml" >/dev/null; then
  echo "build-peers: up to date ($WHAT) in $OUT" >&2
  exit 0
fi
command -v go >/dev/null || { echo "build-peers: Go 1.24.2 or newer is needed to build $WHAT; none is on PATH" >&2; exit 1; }
echo "build-peers: building $WHAT into $BIN" >&2
mkdir -p "$BIN"
cd "$MOD"
# GOTOOLCHAIN=local: never download a Go toolchain; -mod=readonly: go.mod and go.sum are the pin.
export GOTOOLCHAIN=local CGO_ENABLED=0
start=$SECONDS
build() { # name, package, ldflags
  go build -mod=readonly -trimpath -ldflags "-s -w $3" -o "$BIN/$1.tmp" "$2"
  mv "$BIN/$1.tmp" "$BIN/$1"
  echo "build-peers: $1 built ($((SECONDS - start)) s so far)" >&2
}
build host-local "$PLUGINS_MOD/plugins/ipam/host-local" \
  "-X $PLUGINS_MOD/pkg/utils/buildversion.BuildVersion=$PLUGINS_VERSION"
# Whereabouts' CNI binary is the main package in the module's cmd folder.
V="$WB_MOD/pkg/version"
build whereabouts "$WB_MOD/cmd" "-X $V.Version=$WB_VERSION -X $V.ReleaseStatus=released -X $V.GitTreeState=clean"

# The CRDs (IPPool, OverlappingRangeIPReservation, and NodeSlicePool where the release has it) only: the
# same folder also holds a DaemonSet install manifest, which the benchmark does not use.
WB_DIR="$(go list -mod=readonly -m -f '{{.Dir}}' "$WB_MOD")"
[[ -n "$WB_DIR" ]] && compgen -G "$WB_DIR/doc/crds/whereabouts.cni.cncf.io_*.yaml" >/dev/null ||
  { echo "build-peers: no CRDs under $WB_DIR/doc/crds" >&2; exit 1; }
rm -rf "$CRDS"
mkdir -p "$CRDS"
cp "$WB_DIR"/doc/crds/whereabouts.cni.cncf.io_*.yaml "$CRDS/"
chmod u+w "$CRDS"/*.yaml # the module cache is read-only
rm -f "$BIN"/.peers-*
touch "$STAMP"
echo "build-peers: built $WHAT and copied $(ls "$CRDS" | wc -l) CRDs in $((SECONDS - start)) s" >&2
