#!/usr/bin/env bash
# Builds the peer IPAMs that the benchmarks compare Tidepool with into the ignored cache (.cache/peers):
# - host-local (the CNI reference IPAM) and Whereabouts, from the releases pinned in bench/peers/go.mod, into
#   bin/, and the Whereabouts CRDs from the same module into crds/; reused while the stamp matches go.mod and
#   go.sum;
# - Spiderpool (the `spiderpool` CNI plugin, spiderpool-agent and spiderpool-controller) from the source
#   tarball in ../shared/peers beside the repository (the Go module proxy does not serve it), with
#   bench/peers/spiderpool-listen-host.patch applied to the extracted copy, into bin/, and its CRDs into
#   spiderpool-crds/; reused while the stamp matches the tarball and the patch. Without the tarball,
#   Spiderpool is skipped with a message (the benchmarks then skip it too).
# With the argument `conformance` it builds only what the CNI conformance test runs instead: the reference
# macvlan plugin from the same pinned plugins module and bench/peers/cni-runner (libcni, pinned in the same
# go.mod), into bin/; reused while the stamp matches go.mod, go.sum and the runner's source.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${TIDEPOOL_CACHE:-$ROOT/.cache}/peers"
BIN="$OUT/bin"
CRDS="$OUT/crds"
MOD="$ROOT/bench/peers"
PLUGINS_MOD=github.com/containernetworking/plugins
CNI_MOD=github.com/containernetworking/cni
WB_MOD=github.com/k8snetworkplumbingwg/whereabouts
SPIDERPOOL_VERSION=v1.2.2
SPIDERPOOL_TARBALL="$ROOT/../shared/peers/spiderpool-$SPIDERPOOL_VERSION.tar.gz"
SPIDERPOOL_PATCH="$MOD/spiderpool-listen-host.patch"
SPIDERPOOL_CRDS="$OUT/spiderpool-crds"
SPIDERPOOL_BINARIES=(spiderpool spiderpool-agent spiderpool-controller)

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
# Never download a Go toolchain; static binaries.
export GOTOOLCHAIN=local CGO_ENABLED=0
start=$SECONDS

require_go() { # what needs it, the Go version it needs
  command -v go >/dev/null || { echo "build-peers: Go $2 or newer is needed to build $1; none is on PATH" >&2; exit 1; }
}

go_build() { # name, -mod mode, ldflags, package (from the current directory)
  go build "-mod=$2" -trimpath -ldflags "-s -w $3" -o "$BIN/$1.tmp" "$4"
  mv "$BIN/$1.tmp" "$BIN/$1"
  echo "build-peers: $1 built ($((SECONDS - start)) s so far)" >&2
}

begin_build() { # what is built
  require_go "$1" 1.24.2
  echo "build-peers: building $1 into $BIN" >&2
  mkdir -p "$BIN"
  cd "$MOD"
}

all_built() { # binary names
  for name in "$@"; do [[ -x "$BIN/$name" ]] || return 1; done
}

modversion() { # the version go.mod requires of module $1
  sed -n "s#^require $1 \(v[^ ]*\)\$#\1#p;s#^\t$1 \(v[^ ]*\)\$#\1#p" "$MOD/go.mod" | head -1
}

build_module_peers() {
  local plugins_version wb_version what stamp wb_dir version_pkg
  plugins_version="$(modversion "$PLUGINS_MOD")"
  wb_version="$(modversion "$WB_MOD")"
  [[ -n "$plugins_version" && -n "$wb_version" ]] ||
    { echo "build-peers: cannot read the $PLUGINS_MOD and $WB_MOD versions from $MOD/go.mod" >&2; exit 1; }
  what="host-local $plugins_version, whereabouts $wb_version"
  stamp="$BIN/.peers-$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" ]] && all_built host-local whereabouts && compgen -G "$CRDS/*.yaml" >/dev/null; then
    echo "build-peers: up to date ($what) in $OUT" >&2
    return
  fi
  begin_build "$what"
  # -mod=readonly: go.mod and go.sum are the pin.
  go_build host-local readonly "-X $PLUGINS_MOD/pkg/utils/buildversion.BuildVersion=$plugins_version" \
    "$PLUGINS_MOD/plugins/ipam/host-local"
  # Whereabouts' CNI binary is the main package in the module's cmd folder.
  version_pkg="$WB_MOD/pkg/version"
  go_build whereabouts readonly \
    "-X $version_pkg.Version=$wb_version -X $version_pkg.ReleaseStatus=released -X $version_pkg.GitTreeState=clean" "$WB_MOD/cmd"

  # The CRDs (IPPool, OverlappingRangeIPReservation, and NodeSlicePool where the release has it) only: the
  # same folder also holds a DaemonSet install manifest, which the benchmark does not use.
  wb_dir="$(go list -mod=readonly -m -f '{{.Dir}}' "$WB_MOD")"
  [[ -n "$wb_dir" ]] && compgen -G "$wb_dir/doc/crds/whereabouts.cni.cncf.io_*.yaml" >/dev/null ||
    { echo "build-peers: no CRDs under $wb_dir/doc/crds" >&2; exit 1; }
  rm -rf "$CRDS"
  mkdir -p "$CRDS"
  cp "$wb_dir"/doc/crds/whereabouts.cni.cncf.io_*.yaml "$CRDS/"
  chmod u+w "$CRDS"/*.yaml # the module cache is read-only
  rm -f "$BIN"/.peers-*
  touch "$stamp"
  echo "build-peers: built $what and copied $(ls "$CRDS" | wc -l) CRDs in $((SECONDS - start)) s" >&2
}

build_spiderpool() {
  local what="spiderpool $SPIDERPOOL_VERSION" stamp
  if [[ ! -f "$SPIDERPOOL_TARBALL" ]]; then
    echo "build-peers: skipping $what: no source tarball at $SPIDERPOOL_TARBALL" >&2
    return
  fi
  stamp="$BIN/.spiderpool-$(cat "$SPIDERPOOL_TARBALL" "$SPIDERPOOL_PATCH" | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" ]] && all_built "${SPIDERPOOL_BINARIES[@]}" && compgen -G "$SPIDERPOOL_CRDS/*.yaml" >/dev/null; then
    echo "build-peers: up to date ($what) in $OUT" >&2
    return
  fi
  require_go "$what" 1.25
  echo "build-peers: building $what from $SPIDERPOOL_TARBALL into $BIN (cold: a few minutes on 2 cores)" >&2
  mkdir -p "$BIN"
  # Global, for the EXIT trap.
  spiderpool_src="$(mktemp -d "$OUT/spiderpool-src.XXXXXX")"
  trap 'rm -rf "$spiderpool_src"' EXIT
  tar -xzf "$SPIDERPOOL_TARBALL" -C "$spiderpool_src" --strip-components=1
  # The servers bind every interface upstream: the patch adds SPIDERPOOL_LISTEN_HOST (see the patch).
  patch -s -p1 -d "$spiderpool_src" <"$SPIDERPOOL_PATCH"
  cd "$spiderpool_src"
  # -mod=vendor: the tarball's vendor/ is the pin, and nothing is fetched.
  for name in "${SPIDERPOOL_BINARIES[@]}"; do go_build "$name" vendor "" "./cmd/$name"; done
  # Spiderpool's own CRDs; the chart's folder also holds Multus' and the SR-IOV operator's, not used here.
  rm -rf "$SPIDERPOOL_CRDS"
  mkdir -p "$SPIDERPOOL_CRDS"
  cp charts/spiderpool/crds/spiderpool.spidernet.io_*.yaml "$SPIDERPOOL_CRDS/"
  rm -f "$BIN"/.spiderpool-*
  touch "$stamp"
  echo "build-peers: built $what and copied $(ls "$SPIDERPOOL_CRDS" | wc -l) CRDs in $((SECONDS - start)) s" >&2
}

build_conformance() {
  local plugins_version cni_version what stamp
  plugins_version="$(modversion "$PLUGINS_MOD")"
  cni_version="$(modversion "$CNI_MOD")"
  [[ -n "$plugins_version" && -n "$cni_version" ]] ||
    { echo "build-peers: cannot read the $PLUGINS_MOD and $CNI_MOD versions from $MOD/go.mod" >&2; exit 1; }
  what="macvlan $plugins_version, cni-runner (libcni $cni_version)"
  stamp="$BIN/.conformance-$(cat "$MOD/go.mod" "$MOD/go.sum" "$MOD"/cni-runner/*.go | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" ]] && all_built macvlan cni-runner; then
    echo "build-peers: up to date ($what) in $OUT" >&2
    return
  fi
  begin_build "$what"
  go_build macvlan readonly "-X $PLUGINS_MOD/pkg/utils/buildversion.BuildVersion=$plugins_version" "$PLUGINS_MOD/plugins/main/macvlan"
  go_build cni-runner readonly "" ./cni-runner
  rm -f "$BIN"/.conformance-*
  touch "$stamp"
  echo "build-peers: built $what in $((SECONDS - start)) s" >&2
}

case "${1:-}" in
  conformance) build_conformance ;;
  '')
    build_module_peers
    build_spiderpool
    ;;
  *) echo "build-peers: unknown target $1 (expected conformance, or nothing for the benchmarks' peers)" >&2; exit 2 ;;
esac
