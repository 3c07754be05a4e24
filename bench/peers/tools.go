//go:build tools

// Package tools pins the peer CNI IPAM plugins that the IPAM benchmark compares Tidepool with:
// host-local (the CNI reference IPAM) and Whereabouts; and, for the conformance test, the reference macvlan
// plugin (cni-runner, in this module, pins libcni). stack/build-peers.sh builds them.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/macvlan"
	_ "github.com/k8snetworkplumbingwg/whereabouts/cmd"
)
