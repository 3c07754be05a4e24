// Command cni-runner drives CNI plugins the way a container runtime does, through libcni (the library
// containerd and CRI-O build on), for Tidepool's conformance test. It prints what libcni returned as JSON on
// stdout: the result of ADD, nothing for the other verbs; a failure prints the CNI error and exits 1.
//
//	cni-runner -conf FILE -path DIR -cache DIR add|check|del CONTAINER_ID NETNS IFNAME CNI_ARGS
//	cni-runner -conf FILE -path DIR -cache DIR gc [CONTAINER_ID/IFNAME ...]
//	cni-runner -conf FILE -path DIR -cache DIR status
//
// gc is libcni's GCNetworkList (a DEL for each cached attachment not listed, then GC to each plugin from spec
// 1.1.0 on), followed by GC delegated to each plugin's IPAM, as a main plugin that implements GC delegates it:
// the reference plugins (v1.9.1) do not implement GC yet, so without this the IPAM would never see one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

func main() {
	confFile := flag.String("conf", "", "the network configuration list (conflist)")
	binDir := flag.String("path", "", "the CNI plugin directory")
	cacheDir := flag.String("cache", "", "libcni's cache directory (the runtime's record of its attachments)")
	flag.Parse()
	if *confFile == "" || *binDir == "" || *cacheDir == "" || flag.NArg() < 1 {
		fail(errors.New("usage: cni-runner -conf FILE -path DIR -cache DIR add|check|del|gc|status [ARGS]"))
	}
	list, err := libcni.ConfListFromFile(*confFile)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{*binDir}, *cacheDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	verb, args := flag.Arg(0), flag.Args()[1:]
	switch verb {
	case "add", "check", "del":
		if len(args) != 4 {
			fail(fmt.Errorf("%s needs CONTAINER_ID NETNS IFNAME CNI_ARGS", verb))
		}
		rt := runtimeConf(args)
		switch verb {
		case "add":
			result, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				fail(err)
			}
			printJSON(result)
		case "check":
			check(cni.CheckNetworkList(ctx, list, rt))
		case "del":
			check(cni.DelNetworkList(ctx, list, rt))
		}
	case "gc":
		valid, err := attachments(args)
		if err != nil {
			fail(err)
		}
		check(errors.Join(cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid}), delegateGC(ctx, list, *binDir, valid)))
	case "status":
		check(cni.GetStatusNetworkList(ctx, list))
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

func runtimeConf(args []string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: args[0], NetNS: args[1], IfName: args[2]}
	for _, pair := range strings.Split(args[3], ";") {
		if key, value, ok := strings.Cut(pair, "="); ok {
			rt.Args = append(rt.Args, [2]string{key, value})
		}
	}
	return rt
}

func attachments(args []string) ([]types.GCAttachment, error) {
	valid := []types.GCAttachment{}
	for _, arg := range args {
		containerID, ifName, ok := strings.Cut(arg, "/")
		if !ok {
			return nil, fmt.Errorf("a valid attachment is CONTAINER_ID/IFNAME, not %q", arg)
		}
		valid = append(valid, types.GCAttachment{ContainerID: containerID, IfName: ifName})
	}
	return valid, nil
}

// delegateGC sends GC to each plugin's IPAM with the plugin's configuration as libcni builds it for GC.
func delegateGC(ctx context.Context, list *libcni.NetworkConfigList, binDir string, valid []types.GCAttachment) error {
	if atLeast, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "1.1.0"); !atLeast {
		return nil
	}
	if err := os.Setenv("CNI_PATH", binDir); err != nil {
		return err
	}
	var errs []error
	for _, plugin := range list.Plugins {
		if plugin.Network.IPAM.Type == "" {
			continue
		}
		conf, err := libcni.InjectConf(plugin, map[string]interface{}{
			"name":                      list.Name,
			"cniVersion":                list.CNIVersion,
			"cni.dev/valid-attachments": valid,
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, invoke.DelegateGC(ctx, plugin.Network.IPAM.Type, conf.Bytes, nil))
	}
	return errors.Join(errs...)
}

func printJSON(value interface{}) {
	if err := json.NewEncoder(os.Stdout).Encode(value); err != nil {
		fail(err)
	}
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

// fail prints the CNI error that err carries (a plugin's own {"code", "msg", "details"}), or wraps any other
// error as one, and exits 1.
func fail(err error) {
	var cniErr *types.Error
	if !errors.As(err, &cniErr) {
		cniErr = &types.Error{Code: types.ErrInternal, Msg: err.Error()}
	}
	printJSON(map[string]interface{}{"code": cniErr.Code, "msg": cniErr.Msg, "details": cniErr.Details, "error": err.Error()})
	os.Exit(1)
}
