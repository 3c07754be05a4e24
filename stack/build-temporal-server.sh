#!/usr/bin/env bash
# Builds the Temporal server (`temporal-server`, go.temporal.io/server's cmd/server) and its SQL schema tool
# (`temporal-sql-tool`, cmd/tools/sql) from the pinned release's Go modules (stack/temporal-server/go.mod) into
# the ignored cache, for the stack's `--temporal server` path, and copies the release's PostgreSQL 12 schema
# folders beside them. A build is reused while its stamp matches go.mod and go.sum.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TIDEPOOL_CACHE:-$ROOT/.cache}"
BIN="$CACHE/bin"
SCHEMA="$CACHE/temporal-schema"
MOD="$ROOT/stack/temporal-server"
VERSION="$(sed -n 's/^require go.temporal.io\/server \(v[0-9.]*\)$/\1/p;s/^\tgo.temporal.io\/server \(v[0-9.]*\)$/\1/p' "$MOD/go.mod" | head -1)"
[[ -n "$VERSION" ]] || { echo "build-temporal-server: cannot read the go.temporal.io/server version from $MOD/go.mod" >&2; exit 1; }
# The server's go.mod asks for Go 1.26.10, newer than this machine's 1.26.8: the go command takes the
# approved toolchain go1.27.3 from the Go module proxy (once, into the module cache) and never another.
GO_TOOLCHAIN=go1.27.3
# The stamp hashes the files' contents only, so that checkouts at other paths sharing one cache agree on it.
STAMP="$BIN/.temporal-server-$VERSION-$(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16)"
COMMANDS=(temporal-server temporal-sql-tool)
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi

if [[ -f "$STAMP" && -d "$SCHEMA/postgresql/v12/temporal" ]] && for c in "${COMMANDS[@]}"; do [[ -x "$BIN/$c" ]] || exit 1; done; then
  exit 0
fi
command -v go >/dev/null || { echo "build-temporal-server: Go is needed to build the Temporal server $VERSION; none is on PATH" >&2; exit 1; }
mkdir -p "$BIN"
echo "build-temporal-server: building the Temporal server $VERSION (${COMMANDS[*]}) into $BIN; the first build takes a while" >&2
cd "$MOD"
start=$SECONDS
build() { # <output name> <package>
  GOTOOLCHAIN="$GO_TOOLCHAIN" CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$BIN/$1.tmp" "$2"
  mv "$BIN/$1.tmp" "$BIN/$1"
  echo "build-temporal-server: $1 built ($((SECONDS - start)) s so far)" >&2
}
build temporal-server go.temporal.io/server/cmd/server
build temporal-sql-tool go.temporal.io/server/cmd/tools/sql
# The schema the tool applies ships in the server module; copied so the stack needs no module cache at run time.
module_dir="$(GOTOOLCHAIN="$GO_TOOLCHAIN" go list -mod=readonly -m -f '{{.Dir}}' go.temporal.io/server)"
rm -rf "$SCHEMA"
mkdir -p "$SCHEMA/postgresql"
cp -R "$module_dir/schema/postgresql/v12" "$SCHEMA/postgresql/v12"
chmod -R u+w "$SCHEMA"
rm -f "$BIN"/.temporal-server-*
touch "$STAMP"
echo "build-temporal-server: done in $((SECONDS - start)) s" >&2
