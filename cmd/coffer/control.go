package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The control socket: a mount serves a Unix socket beside its pid file (in
// the private run directory) so that `coffer unmount` learns how the mount
// ended. unmount connects before it unmounts, sends "wait" and waits for
// "ok" (the mount has it on its list); the mount answers every waiting
// connection with one JSON line, its final report, once its last uploads
// are done, then exits. The report names files by
// their plaintext paths: it travels over the socket to the terminal of the
// unmount command and is never written to disk (DESIGN.md §5).

// finalReport is what a mount reports when it ends.
type finalReport struct {
	// Failed are the files whose final upload failed; they stay in the
	// upload journal of CacheDir for the next mount.
	Failed []reportedFile `json:"failed,omitempty"`
	// Conflicts are the conflict copies stored during the mount.
	Conflicts []reportedConflict `json:"conflicts,omitempty"`
	CacheDir  string             `json:"cache_dir"`
	// Err is any other failure of the unmount (closing the volume).
	Err string `json:"error,omitempty"`
}

type reportedFile struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

type reportedConflict struct {
	Path string `json:"path"`
	Copy string `json:"copy"`
}

// failedError is the error of a final report with failed uploads, naming
// the files (names false: only their count, for a log file).
func (r *finalReport) failedError(names bool) error {
	if len(r.Failed) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the final upload of %d file(s) failed; they stay in the upload journal of %s, and the next mount with that cache dir uploads them first", len(r.Failed), r.CacheDir)
	if !names {
		b.WriteString(" (coffer unmount names them)")
		return errors.New(b.String())
	}
	b.WriteString(":")
	for i, f := range r.Failed {
		if i == maxNamed {
			fmt.Fprintf(&b, " and %d more", len(r.Failed)-i)
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s (%s)", f.Path, f.Error)
	}
	return errors.New(b.String())
}

// maxNamed bounds the files one error line names.
const maxNamed = 20

// conflictLines describes the conflict copies, one line each.
func (r *finalReport) conflictLines() []string {
	var out []string
	for _, c := range r.Conflicts {
		out = append(out, fmt.Sprintf("coffer: conflict: another mount changed %s; this mount's version is kept beside it as %s", c.Path, c.Copy))
	}
	return out
}

func (e *env) controlSocket(mountpoint string) string {
	return strings.TrimSuffix(e.pidFile(mountpoint), ".pid") + ".sock"
}

// controlServer is a mount's end of the control socket.
type controlServer struct {
	ln   net.Listener
	path string

	mu      sync.Mutex
	waiting []net.Conn
	report  *finalReport // set once the mount ended
}

// listenControl serves the control socket at path (the caller made its
// directory private).
func listenControl(path string) (*controlServer, error) {
	os.Remove(path) // a dead mount's
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &controlServer{ln: ln, path: path}
	go s.serve()
	return s, nil
}

func (s *controlServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (s *controlServer) handle(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "wait" {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(c, "ok\n"); err != nil {
		c.Close()
		return
	}
	if s.report != nil {
		send(c, s.report)
		return
	}
	s.waiting = append(s.waiting, c)
}

// finish sends rep to everyone waiting (and to later connections until
// close).
func (s *controlServer) finish(rep *finalReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report = rep
	for _, c := range s.waiting {
		send(c, rep)
	}
	s.waiting = nil
}

func send(c net.Conn, rep *finalReport) {
	json.NewEncoder(c).Encode(rep)
	c.Close()
}

// close stops serving and removes the socket.
func (s *controlServer) close() {
	s.ln.Close()
	os.Remove(s.path)
	s.mu.Lock()
	for _, c := range s.waiting {
		c.Close()
	}
	s.waiting = nil
	s.mu.Unlock()
}

// controlClient is unmount's end: connected before the unmount, read
// after it.
type controlClient struct {
	c  net.Conn
	br *bufio.Reader
}

// dialControl connects to the mount at path and asks for its report; nil
// when no mount serves the socket (an older coffer, or none).
func dialControl(path string) *controlClient {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(io.LimitReader(c, 16<<20))
	if _, err := io.WriteString(c, "wait\n"); err != nil {
		c.Close()
		return nil
	}
	if line, err := br.ReadString('\n'); err != nil || line != "ok\n" {
		c.Close()
		return nil
	}
	c.SetDeadline(time.Time{})
	return &controlClient{c: c, br: br}
}

// errNoReport: the mount process ended without a final report (killed).
var errNoReport = errors.New("the mount process ended without a final report")

// wait reads the final report (blocking until the mount ends).
func (c *controlClient) wait() (*finalReport, error) {
	defer c.c.Close()
	var rep finalReport
	if err := json.NewDecoder(c.br).Decode(&rep); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, errNoReport
		}
		return nil, fmt.Errorf("reading the mount's final report: %w", err)
	}
	return &rep, nil
}
