#!/usr/bin/env bash
# Builds the tools that render and validate deploy/: Helm (go install from the Go module proxy) and
# compose-check (stack/compose-check: compose-go's loader, as `docker compose` uses it), into the ignored
# cache, and takes cert-manager's Certificate and Issuer CRDs from its Go module (deploy/crds in the module
# zip) so the tests validate the chart's cert-manager objects. Each is reused while its stamp matches.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION=v3.22.0
CERT_MANAGER_VERSION=v1.21.2
CACHE="${TIDEPOOL_CACHE:-$ROOT/.cache}"
BIN="$CACHE/bin"
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
mkdir -p "$BIN"

helm_stamp="$BIN/.helm-$HELM_VERSION"
if [[ ! -f "$helm_stamp" || ! -x "$BIN/helm" ]]; then
  command -v go >/dev/null || { echo "build-deploy-tools: Go is needed to build Helm; none is on PATH" >&2; exit 1; }
  echo "build-deploy-tools: building Helm $HELM_VERSION into $BIN" >&2
  # GOTOOLCHAIN=local: never download a Go toolchain.
  GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$BIN" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  rm -f "$BIN"/.helm-*
  touch "$helm_stamp"
fi

compose_stamp="$BIN/.compose-check-$(cat "$ROOT"/stack/compose-check/{go.mod,go.sum,main.go} | sha256sum | cut -c1-16)"
if [[ ! -f "$compose_stamp" || ! -x "$BIN/compose-check" ]]; then
  command -v go >/dev/null || { echo "build-deploy-tools: Go is needed to build compose-check; none is on PATH" >&2; exit 1; }
  echo "build-deploy-tools: building compose-check into $BIN" >&2
  (cd "$ROOT/stack/compose-check" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$BIN/compose-check.tmp" .)
  mv "$BIN/compose-check.tmp" "$BIN/compose-check"
  rm -f "$BIN"/.compose-check-*
  touch "$compose_stamp"
fi

crds="$CACHE/cert-manager-crds"
if [[ ! -f "$crds/.version-$CERT_MANAGER_VERSION" ]]; then
  echo "build-deploy-tools: taking cert-manager $CERT_MANAGER_VERSION's CRDs from its Go module" >&2
  dir="$(cd /tmp && GOTOOLCHAIN=local go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir/deploy/crds" ]] || { echo "build-deploy-tools: no deploy/crds in cert-manager $CERT_MANAGER_VERSION's module" >&2; exit 1; }
  rm -rf "$crds"
  mkdir -p "$crds"
  cp "$dir/deploy/crds/cert-manager.io_certificates.yaml" "$dir/deploy/crds/cert-manager.io_issuers.yaml" "$crds/"
  touch "$crds/.version-$CERT_MANAGER_VERSION"
fi
