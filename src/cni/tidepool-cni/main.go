// tidepool-cni: the CNI IPAM plugin executable. The runtime (or the main plugin delegating IPAM) runs it with
// CNI_* variables and the network configuration on stdin. It forwards both, as they came, to the node's
// tidepool agent and prints the agent's answer: every IPAM decision (validation, versions, results, error
// codes) is the agent's, in TypeScript (src/cni). This program only decides what to do when the agent cannot
// answer: report it, or spool a DEL for the agent to replay. The facts it shares with the agent (codes,
// defaults, versions) are linked in by `npm run build:cni` from src/contract and src/cni.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
)

// factsJSON is set at link time (-X main.factsJSON=...) by scripts/build-cni.ts.
var factsJSON string

type facts struct {
	InvokePath        string   `json:"invokePath"`
	SupportedVersions []string `json:"supportedVersions"`
	NewestVersion     string   `json:"newestVersion"`
	AgentSocket       string   `json:"agentSocket"`
	SpoolDir          string   `json:"spoolDir"`
	MaxTimeoutSeconds float64  `json:"maxTimeoutSeconds"`
	TimeoutSeconds    struct {
		Add    float64 `json:"add"`
		Del    float64 `json:"del"`
		Status float64 `json:"status"`
	} `json:"timeoutSeconds"`
	Codes struct {
		InvalidEnvironment int `json:"invalidEnvironment"`
		IOFailure          int `json:"ioFailure"`
		TryAgainLater      int `json:"tryAgainLater"`
		PluginNotAvailable int `json:"pluginNotAvailable"`
	} `json:"codes"`
	SpoolNameMax int `json:"spoolNameMax"`
}

type cniError struct {
	CniVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

// output is the agent's answer to an invocation: what to print, and the exit code.
type output struct {
	Stdout   *string `json:"stdout"`
	Stderr   *string `json:"stderr"`
	ExitCode *int    `json:"exitCode"`
}

func main() {
	var f facts
	if err := json.Unmarshal([]byte(factsJSON), &f); err != nil || f.InvokePath == "" {
		// No facts means no codes to answer with: 999 is libcni's "internal error".
		emit(cniError{CniVersion: "1.1.0", Code: 999, Msg: "tidepool-cni was built without its facts", Details: "build it with `npm run build:cni`"})
	}
	stdin, err := readStdin()
	if err != nil {
		emit(cniError{CniVersion: f.NewestVersion, Code: f.Codes.IOFailure, Msg: "could not read the network configuration from stdin", Details: err.Error()})
	}
	run(f, stdin)
}

func readStdin() ([]byte, error) {
	// Run by hand from a terminal there is nothing to wait for: treat it as no configuration.
	if info, err := os.Stdin.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
		return nil, nil
	}
	return io.ReadAll(os.Stdin)
}

// transport is what the network configuration says about reaching the agent. An invalid value falls back
// to the default here; the agent, once reached, refuses it with the precise error.
type transport struct {
	socket      string
	spoolDir    string
	timeout     float64
	deadlineKey string
	cniVersion  string
}

func transportOf(f facts, command string, stdin []byte) transport {
	var conf struct {
		CniVersion any            `json:"cniVersion"`
		Ipam       map[string]any `json:"ipam"`
	}
	_ = json.Unmarshal(stdin, &conf)
	t := transport{socket: f.AgentSocket, spoolDir: f.SpoolDir, cniVersion: f.NewestVersion}
	if v, ok := conf.CniVersion.(string); ok && regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
		t.cniVersion = v
	}
	if path, ok := conf.Ipam["agent_socket"].(string); ok && strings.HasPrefix(path, "/") {
		t.socket = path
	}
	if path, ok := conf.Ipam["spool_dir"].(string); ok && strings.HasPrefix(path, "/") {
		t.spoolDir = path
	}
	switch command {
	case "ADD":
		t.deadlineKey, t.timeout = "add_timeout_seconds", f.TimeoutSeconds.Add
	case "STATUS", "VERSION":
		t.deadlineKey, t.timeout = "status_timeout_seconds", f.TimeoutSeconds.Status
	default:
		t.deadlineKey, t.timeout = "del_timeout_seconds", f.TimeoutSeconds.Del
	}
	if seconds, ok := conf.Ipam[t.deadlineKey].(float64); ok && seconds > 0 && seconds <= f.MaxTimeoutSeconds {
		t.timeout = seconds
	}
	return t
}

// failure is why the agent gave no answer to print.
type failure struct {
	kind    string // "unreachable", "timeout" or "bad-answer"
	msg     string
	details string
}

func run(f facts, stdin []byte) {
	command := os.Getenv("CNI_COMMAND")
	t := transportOf(f, command, stdin)
	answer, fail := invoke(f, t, command, stdin)
	if fail == nil {
		if *answer.Stderr != "" {
			os.Stderr.WriteString(*answer.Stderr)
		}
		os.Stdout.WriteString(*answer.Stdout)
		os.Exit(*answer.ExitCode)
	}
	switch {
	case command == "VERSION" && fail.kind != "bad-answer":
		version := t.cniVersion
		if !slices.Contains(f.SupportedVersions, version) {
			version = f.NewestVersion
		}
		printJSON(os.Stdout, map[string]any{"cniVersion": version, "supportedVersions": f.SupportedVersions})
		os.Exit(0)
	case command == "DEL" && fail.kind != "bad-answer":
		spoolOrFail(f, t, stdin, fail)
	case command == "STATUS" && fail.kind != "bad-answer":
		// The network is not ready: the kubelet schedules no new pods on the node until the agent answers.
		emit(cniError{CniVersion: t.cniVersion, Code: f.Codes.PluginNotAvailable, Msg: fail.msg, Details: fail.details})
	case fail.kind == "bad-answer":
		emit(cniError{CniVersion: t.cniVersion, Code: f.Codes.IOFailure, Msg: fail.msg, Details: fail.details})
	default:
		emit(cniError{CniVersion: t.cniVersion, Code: f.Codes.TryAgainLater, Msg: fail.msg, Details: fail.details})
	}
}

func operationName(command string) string {
	if command == "" {
		return "the invocation"
	}
	return command
}

func invoke(f facts, t transport, command string, stdin []byte) (*output, *failure) {
	env := map[string]string{}
	for _, pair := range os.Environ() {
		if name, value, ok := strings.Cut(pair, "="); ok && strings.HasPrefix(name, "CNI_") {
			env[name] = value
		}
	}
	body, err := json.Marshal(map[string]any{"env": env, "stdin": strings.ToValidUTF8(string(stdin), "\uFFFD")})
	if err != nil {
		return nil, &failure{kind: "bad-answer", msg: "could not encode the invocation for the tidepool agent", details: err.Error()}
	}
	op := operationName(command)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(t.timeout*float64(time.Second)))
	defer cancel()
	connected := false
	client := http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, "unix", t.socket)
			connected = err == nil
			return conn, err
		},
	}}
	request, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://tidepool-agent"+f.InvokePath, bytes.NewReader(body))
	request.Header.Set("content-type", "application/json")
	response, err := client.Do(request)
	var text []byte
	if err == nil {
		text, err = io.ReadAll(response.Body)
		response.Body.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, &failure{
				kind: "timeout",
				msg:  fmt.Sprintf("tidepool agent at %s did not answer %s within %s s", t.socket, op, seconds(t.timeout)),
				details: "the agent may be overloaded or waiting on Temporal or the Kubernetes API: see the tidepool-agent logs on " +
					"this node. The deadline is ipam." + t.deadlineKey + ".",
			}
		}
		if connected {
			return nil, &failure{kind: "unreachable", msg: fmt.Sprintf("the connection to the tidepool agent at %s broke before it answered %s (%s)", t.socket, op, errnoOf(err)), details: err.Error()}
		}
		return nil, &failure{
			kind:    "unreachable",
			msg:     fmt.Sprintf("tidepool agent is not reachable at %s (%s): is the tidepool-agent DaemonSet running on this node?", t.socket, errnoOf(err)),
			details: err.Error(),
		}
	}
	var answer output
	problem := ""
	if response.StatusCode != http.StatusOK {
		problem = fmt.Sprintf("HTTP %d", response.StatusCode)
	} else if json.Unmarshal(text, &answer) != nil || answer.Stdout == nil || answer.Stderr == nil || answer.ExitCode == nil || (*answer.ExitCode != 0 && *answer.ExitCode != 1) {
		problem = `not {"stdout", "stderr", "exitCode"}`
	}
	if problem != "" {
		excerpt := string(text)
		if len(excerpt) > 300 {
			excerpt = excerpt[:300] + "..."
		}
		return nil, &failure{
			kind:    "bad-answer",
			msg:     fmt.Sprintf("tidepool agent at %s gave an unexpected answer to %s: %s", t.socket, op, problem),
			details: fmt.Sprintf("is the process listening on %s a tidepool agent of a matching version? It answered: %s", t.socket, excerpt),
		}
	}
	return &answer, nil
}

func seconds(value float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", value), "0"), ".")
}

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT: "ENOENT", syscall.ECONNREFUSED: "ECONNREFUSED", syscall.EACCES: "EACCES", syscall.EPERM: "EPERM",
	syscall.ENOTSOCK: "ENOTSOCK", syscall.ECONNRESET: "ECONNRESET", syscall.EPIPE: "EPIPE", syscall.ENOTDIR: "ENOTDIR",
	syscall.EAGAIN: "EAGAIN", syscall.EINVAL: "EINVAL",
}

// errnoOf names the system error under err, as Node.js names it ("ENOENT"), or gives err's own text.
func errnoOf(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name, ok := errnoNames[errno]; ok {
			return name
		}
		return errno.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "ECONNRESET"
	}
	return err.Error()
}

// spoolOrFail keeps a DEL the agent could not take, for the agent to replay: a DEL is never lost.
func spoolOrFail(f facts, t transport, stdin []byte, fail *failure) {
	containerID, ifname := os.Getenv("CNI_CONTAINERID"), os.Getenv("CNI_IFNAME")
	if containerID == "" || ifname == "" {
		emit(cniError{
			CniVersion: t.cniVersion,
			Code:       f.Codes.InvalidEnvironment,
			Msg:        "a DEL without CNI_CONTAINERID and CNI_IFNAME cannot be spooled",
			Details:    "the tidepool agent could not take it (" + fail.msg + "); the runtime sets both for every DEL",
		})
	}
	file, err := spoolDel(f, t.spoolDir, containerID, ifname, stdin)
	if err != nil {
		emit(cniError{
			CniVersion: t.cniVersion,
			Code:       f.Codes.IOFailure,
			Msg:        fmt.Sprintf("could not spool the DEL of container %s (interface %s) to %s: %s (%s)", containerID, ifname, t.spoolDir, err, errnoOf(err)),
			Details: fmt.Sprintf("the tidepool agent could not take the DEL (%s), so it must be spooled for the agent to replay; "+
				"make %s (ipam.spool_dir) a writable directory on this node", fail.msg, t.spoolDir),
		})
	}
	fmt.Fprintf(os.Stderr, "tidepool-cni: %s; DEL spooled to %s for the agent to replay\n", fail.msg, file)
	os.Exit(0)
}

var unsafeUnit = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// spoolFileName is src/cni/spool.ts's rule: "<containerID>-<interface>.json", with characters outside
// [A-Za-z0-9._-] as "_" (one per UTF-16 unit, as there) and, when that or the length cut changed the name,
// a hash of the exact IDs.
func spoolFileName(maxNamePart int, containerID, ifname string) string {
	clean := func(name string) string {
		var b strings.Builder
		for _, unit := range utf16.Encode([]rune(name)) {
			if unit < 128 && !unsafeUnit.MatchString(string(rune(unit))) {
				b.WriteByte(byte(unit))
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	base := clean(containerID) + "-" + clean(ifname)
	if clean(containerID) == containerID && clean(ifname) == ifname && len(base) <= maxNamePart {
		return base + ".json"
	}
	sum := sha256.Sum256([]byte(containerID + "\x00" + ifname))
	if len(base) > maxNamePart {
		base = base[:maxNamePart]
	}
	return base + "-" + hex.EncodeToString(sum[:])[:12] + ".json"
}

// spoolDel writes the invocation as it came ({"env", "stdin", "spooledAt"}) durably: a temp file, fsync,
// rename, fsync of the directory (and of each directory it had to create).
func spoolDel(f facts, dir, containerID, ifname string, stdin []byte) (string, error) {
	if err := mkdirAllDurable(dir); err != nil {
		return "", err
	}
	env := map[string]string{}
	for _, pair := range os.Environ() {
		if name, value, ok := strings.Cut(pair, "="); ok && strings.HasPrefix(name, "CNI_") {
			env[name] = value
		}
	}
	entry, err := json.Marshal(map[string]any{
		"env":       env,
		"stdin":     strings.ToValidUTF8(string(stdin), "\uFFFD"),
		"spooledAt": time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	})
	if err != nil {
		return "", err
	}
	target := filepath.Join(dir, spoolFileName(f.SpoolNameMax, containerID, ifname))
	random := make([]byte, 4)
	_, _ = rand.Read(random)
	temp := fmt.Sprintf("%s.%d-%s.tmp", target, os.Getpid(), hex.EncodeToString(random))
	file, err := os.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = file.Write(append(entry, '\n'))
	if err == nil {
		err = file.Sync()
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Rename(temp, target)
	}
	if err != nil {
		os.Remove(temp)
		return "", err
	}
	return target, syncDir(dir)
}

func mkdirAllDurable(dir string) error {
	if info, err := os.Stat(dir); err == nil {
		if !info.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	handle, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer handle.Close()
	return handle.Sync()
}

func printJSON(w io.Writer, value any) {
	text, _ := json.Marshal(value)
	w.Write(append(text, '\n'))
}

// emit prints a CNI error result and exits 1.
func emit(e cniError) {
	printJSON(os.Stdout, e)
	os.Exit(1)
}
