//go:build tools

// Package tools pins the Temporal server and its SQL schema tool that the local stack builds for
// `--temporal server` (stack/build-temporal-server.sh).
package tools

import (
	_ "go.temporal.io/server/cmd/server"
	_ "go.temporal.io/server/cmd/tools/sql"
)
