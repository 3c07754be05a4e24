#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl from the pinned Kubernetes release's Go
# modules (stack/kube/go.mod) into the ignored cache. A build is reused while its stamp matches go.mod.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${TIDEPOOL_CACHE:-$ROOT/.cache}/bin"
MOD="$ROOT/stack/kube"
VERSION="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p;s/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$MOD/go.mod" | head -1)"
[[ -n "$VERSION" ]] || { echo "build-kube: cannot read the k8s.io/kubernetes version from $MOD/go.mod" >&2; exit 1; }
# The stamp hashes the files' contents only (sha256sum of the files would list their paths too), so that
# checkouts at other paths sharing one cache agree on it.
STAMP="$BIN/.kube-$VERSION-$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)"
COMMANDS=(kube-apiserver kube-controller-manager kubectl)
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi

if [[ -f "$STAMP" ]] && for c in "${COMMANDS[@]}"; do [[ -x "$BIN/$c" ]] || exit 1; done; then
  exit 0
fi
command -v go >/dev/null || { echo "build-kube: Go 1.24 or newer is needed to build Kubernetes $VERSION; none is on PATH" >&2; exit 1; }
mkdir -p "$BIN"
MINOR="$(echo "$VERSION" | cut -d. -f2)"
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR -X $pkg.gitTreeState=clean"
done
echo "build-kube: building Kubernetes $VERSION (${COMMANDS[*]}) into $BIN; the first build takes a while" >&2
cd "$MOD"
start=$SECONDS
for c in "${COMMANDS[@]}"; do
  # GOTOOLCHAIN=local: never download a Go toolchain; the installed Go must cover the go directive.
  GOTOOLCHAIN=local CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$LDFLAGS" \
    -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv "$BIN/$c.tmp" "$BIN/$c"
  echo "build-kube: $c built ($((SECONDS - start)) s so far)" >&2
done
rm -f "$BIN"/.kube-*
touch "$STAMP"
echo "build-kube: done in $((SECONDS - start)) s" >&2
