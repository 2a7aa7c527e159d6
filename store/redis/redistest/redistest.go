// Package redistest starts real redis-server processes for tests: each on
// a free loopback port with its own temporary directory, stopped by pid
// when the test ends, whatever happens. Tests skip, saying why, where
// redis-server is not installed (scripts/check.sh installs it).
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server the test started.
type Server struct {
	t    testing.TB
	Port int      // the loopback port it listens on
	Dir  string   // its working directory (the AOF and RDB files)
	args []string // the extra arguments it was started with
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited and been waited for
}

// Start starts a redis-server on 127.0.0.1 with no snapshots and the
// extra arguments (for example "--appendonly", "yes"), and waits until it
// answers PING. It skips the test if redis-server is not installed.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server; scripts/check.sh does it)")
	}
	s := &Server{t: t, Dir: t.TempDir(), args: extra}
	var err error
	for range 5 { // a free port may be taken before the server binds it
		if s.Port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// URL returns the sale named name on this server, for redis.Open and
// ticket --store.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("redis://127.0.0.1:%d/0?name=%s", s.Port, name)
}

// Addr returns host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// PID returns the running server's pid.
func (s *Server) PID() int { return s.cmd.Process.Pid }

func (s *Server) start() error {
	args := append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning",
		"--logfile", s.Dir + "/redis.log"}, s.args...)
	cmd := exec.Command("redis-server", args...)
	// A group of its own: the children it forks (a snapshot for a
	// replica, an append-only file rewrite) outlive a SIGKILL of the
	// server alone, and would still be writing in Dir when the test
	// removes it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	stop := func() {
		killGroup(cmd.Process.Pid)
		<-exited
	}
	s.t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pid, err := serverPID(s.Addr()); err == nil && (pid == 0 || pid == cmd.Process.Pid) {
			// pid 0: a server with a password does not say; ours is the one
			// listening if it is still running once the port answers.
			select {
			case <-exited:
				return fmt.Errorf("redis-server on port %d exited: %v", s.Port, werr)
			case <-time.After(50 * time.Millisecond):
			}
			s.cmd, s.done = cmd, exited
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited: %v", s.Port, werr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("redis-server on port %d did not answer INFO within 20s", s.Port)
		}
	}
}

// Kill kills the server with SIGKILL and waits until it is gone.
func (s *Server) Kill() {
	killGroup(s.cmd.Process.Pid)
	<-s.done
}

// killGroup kills the server whose pid is pgid and every process it forked
// with SIGKILL, and waits up to 5 s until none is left.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		// The server itself lingers as a zombie until Wait reaps it; its
		// forked children are reaped by init once killed.
		if !groupHasLiving(pgid) {
			return
		}
	}
}

// groupHasLiving reports whether a process of group pgid other than a
// zombie is left.
func groupHasLiving(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" && pid > 0 {
			return true
		}
	}
	return false
}

// Restart kills the server with SIGKILL and starts it again on the same
// port and directory, so that it reloads what it persisted.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("restart redis-server: %v", err)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverPID asks the server at addr for its process id (INFO server), so
// that a test never mistakes another program's server on a reused port for
// its own. It returns 0 for a server that wants a password first.
func serverPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	switch {
	case strings.HasPrefix(line, "-NOAUTH"):
		return 0, nil
	case !strings.HasPrefix(line, "$"):
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(line))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
}

// StartReplica starts a redis-server that replicates primary, with the
// extra arguments, and waits until the primary streams its writes to it.
func StartReplica(t testing.TB, primary *Server, extra ...string) *Server {
	t.Helper()
	return StartReplicaOf(t, primary, primary.Addr(), extra...)
}

// StartReplicaOf is StartReplica with the replica reaching its primary at
// addr (a Proxy in front of it, say).
func StartReplicaOf(t testing.TB, primary *Server, addr string, extra ...string) *Server {
	t.Helper()
	// The primary sends its first copy at once, not after 5 s.
	if _, err := command(primary.Addr(), "CONFIG SET repl-diskless-sync-delay 0"); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	r := Start(t, append([]string{"--replicaof", host, port}, extra...)...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Up on the replica's side, and online on the primary's: the
		// primary streams its writes only once the replica has
		// acknowledged the first copy, up to a second later.
		info, err := command(r.Addr(), "INFO replication")
		if err == nil && strings.Contains(info, "master_link_status:up") {
			if p, err := command(primary.Addr(), "INFO replication"); err == nil && strings.Contains(p, "state=online") {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica on port %d did not connect to its primary within 20s: %v %s", r.Port, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// command sends one inline command to the server at addr and returns its
// reply as text (a bulk string's contents, or the status line).
func command(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "$") {
		return strings.TrimSpace(line), nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 0 {
		return "", fmt.Errorf("%s answered %q", cmd, line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
