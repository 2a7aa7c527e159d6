package cli

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dirState is every file in a directory: name, mode and content (but for
// the lock file's content: see below).
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, p := range names {
		info, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(p + " " + info.Mode().String() + "\n")
		if strings.HasSuffix(p, ".lock") || strings.HasSuffix(p, ".spare") {
			// Neither holds the sale's data: the lock file is never
			// read, and the spare is what the next buy writes over (a
			// buy that fails at the swap, as in an immutable directory,
			// cannot take that write back).
			continue
		}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
	}
	return b.String()
}

// TestBadFiles: a buy against a broken sale fails with one clear line
// naming the file and the problem and a documented exit status, and
// changes nothing in the directory.
//
// Permissions: as root (CI), file modes do not stop anyone, so the
// read-only cases use a read-only bind mount and chattr +i, and the
// unreadable file is read by a child that drops to uid 65534 (nobody).
// As another user, chmod does it. A case whose tool is missing skips with
// the reason.
func TestBadFiles(t *testing.T) {
	root := os.Geteuid() == 0
	cases := []struct {
		name  string
		setup func(t *testing.T, path string) // path: an initialized sale with one sale made
		code  int
		msg   string // in the error line
		uid   int    // run the buy as this user when root (0: as root)
	}{
		{"lock-file-is-a-directory", func(t *testing.T, path string) {
			replaceWithDir(t, path+".lock")
		}, exitError, ".lock: is a directory", 0},
		{"ticket-file-is-a-directory", func(t *testing.T, path string) {
			replaceWithDir(t, path)
		}, exitInvalid, "is a directory", 0},
		{"journal-is-a-directory", func(t *testing.T, path string) {
			replaceWithDir(t, path+".journal")
		}, exitError, "journal", 0},
		{"dangling-symlink", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("gone.json", path); err != nil {
				t.Fatal(err)
			}
		}, exitError, "is a symlink to gone.json, which does not exist", 0},
		{"ticket-file-missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, exitInvalid, "but its journal", 0}, // the sale exists: never "create it with ticket init"
		{"ticket-file-invalid", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(`{"count": 5, "count": 6}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, exitInvalid, `member "count" appears twice`, 0},
		{"read-only-mount", func(t *testing.T, path string) {
			if !root {
				t.Skip("a read-only bind mount needs root; read-only-dir covers this user")
			}
			dir := filepath.Dir(path)
			mount(t, "--bind", dir, dir)
			t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
			mount(t, "-o", "remount,bind,ro", dir)
		}, exitError, "read-only file system", 0},
		{"read-only-dir", func(t *testing.T, path string) {
			dir := filepath.Dir(path)
			if !root {
				chmod(t, dir, 0o555)
				return
			}
			if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
				t.Skipf("chattr +i %s (root ignores a read-only mode): %v: %s", dir, err, out)
			}
			t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
		}, exitError, "tickets.json.spare", 0},
		{"unreadable-ticket-file", func(t *testing.T, path string) {
			chmod(t, path, 0o600)
			if root {
				// nobody must reach the files and the test binary.
				chmod(t, filepath.Dir(path), 0o777)
				chmod(t, path+".lock", 0o666)
				chmod(t, path+".journal", 0o666)
			} else {
				chmod(t, path, 0)
			}
		}, exitError, "permission denied", 65534},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, err := os.MkdirTemp("", "ticket-badfiles-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			chmod(t, base, 0o755)
			path := filepath.Join(base, "tickets.json")
			if o := runCaptured(t, "init", "-f", path, "--count", "5"); o.code != 0 {
				t.Fatalf("init: %+v", o)
			}
			if o := runCaptured(t, "buy", "-f", path); o.code != 0 {
				t.Fatalf("buy: %+v", o)
			}
			c.setup(t, path)
			before := dirState(t, base)
			cmd := capture(ticketCmd("buy", "-f", path, "--buyer", "bob"))
			if c.uid != 0 && root {
				cmd = asUser(t, c.uid, "buy", "-f", path, "--buyer", "bob")
			}
			o := finish(t, cmd, cmd.Run())
			if o.code != c.code {
				t.Fatalf("exit %d, want %d; stderr: %s", o.code, c.code, o.stderr)
			}
			t.Logf("exit %d: %s", o.code, strings.TrimSpace(o.stderr))
			if o.stdout != "" {
				t.Errorf("stdout %q, want nothing on failure", o.stdout)
			}
			lines := strings.Split(strings.TrimSpace(o.stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "ticket buy: error: ") || !strings.Contains(lines[0], c.msg) {
				t.Fatalf("stderr %q, want one error line containing %q", o.stderr, c.msg)
			}
			if after := dirState(t, base); after != before {
				t.Fatalf("the failed buy changed the directory:\n%s\nto\n%s", before, after)
			}
		})
	}
}

func replaceWithDir(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mount(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mount %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// asUser returns "ticket args..." run as uid (and gid) from a copy of the
// test binary that the user can execute.
func asUser(t *testing.T, uid int, args ...string) *exec.Cmd {
	t.Helper()
	dir, err := os.MkdirTemp("", "ticket-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	chmod(t, dir, 0o755)
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "ticket")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := ticketCmd(args...)
	cmd.Path, cmd.Args[0] = exe, exe
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &bytes.Buffer{}
	return cmd
}

// TestReadOnlyUserReads: a user who may read a sale but not write any of
// its files (here nobody, on root's 0644 files in a 0755 directory) can
// show it and verify it: both lock the sale with descriptors opened to
// read. A buy is refused for what it is, and nothing changes.
func TestReadOnlyUserReads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	base, err := os.MkdirTemp("", "ticket-readonly-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	chmod(t, base, 0o755)
	path := filepath.Join(base, "tickets.json")
	if o := runCaptured(t, "init", "-f", path, "--count", "3"); o.code != exitOK {
		t.Fatalf("init: %+v", o)
	}
	if o := runCaptured(t, "buy", "-f", path, "--buyer", "a"); o.code != exitOK {
		t.Fatalf("buy: %+v", o)
	}
	for _, f := range []string{path, path + ".lock", path + ".journal"} {
		chmod(t, f, 0o644)
	}
	before, _ := os.ReadFile(path + ".journal")
	for _, args := range [][]string{{"show", "-f", path}, {"verify", "-f", path}} {
		cmd := asUser(t, 65534, args...)
		err := cmd.Run()
		out := cmd.Stdout.(*bytes.Buffer).String() + cmd.Stderr.(*bytes.Buffer).String()
		if err != nil || !strings.Contains(out, "2 left of 3") {
			t.Errorf("ticket %v as nobody: %v: %s", args, err, out)
		}
	}
	cmd := asUser(t, 65534, "buy", "-f", path, "--buyer", "b")
	if err := cmd.Run(); err == nil {
		t.Errorf("a buy as nobody on root's 0644 files succeeded")
	}
	if after, _ := os.ReadFile(path + ".journal"); !bytes.Equal(before, after) {
		t.Errorf("the journal changed")
	}
}

// TestSpecialFileAtJournal: a FIFO put at PATH.journal (mkfifo, a script's
// named pipe, a test left behind) is refused at once by every command that
// needs the journal, with the documented exit status 5 and an error naming
// it; show, which reads the ticket file as it is when the journal does not
// fit (verify reports it), shows it. No command waits for a writer that
// never comes (the journal used to be opened without O_NONBLOCK: show and
// verify hung, and verify ignored SIGTERM), and nothing in the directory
// changes.
func TestSpecialFileAtJournal(t *testing.T) {
	cases := []struct {
		args []string
		code int
		out  string // in stdout, for a command that succeeds
	}{
		{[]string{"buy", "--buyer", "bob"}, exitInvalid, ""},
		{[]string{"show"}, 0, "4 left of 5"},
		{[]string{"show", "--sales"}, exitInvalid, ""},
		{[]string{"verify"}, exitInvalid, ""},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			base := t.TempDir()
			path := filepath.Join(base, "tickets.json")
			if o := runCaptured(t, "init", "-f", path, "--count", "5"); o.code != 0 {
				t.Fatalf("init: %+v", o)
			}
			if o := runCaptured(t, "buy", "-f", path); o.code != 0 {
				t.Fatalf("buy: %+v", o)
			}
			if err := os.Remove(path + ".journal"); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(path+".journal", 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			before := dirState(t, base)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := capture(ticketCmdContext(ctx, append(c.args, "-f", path)...))
			o := finish(t, cmd, cmd.Run())
			if ctx.Err() != nil {
				t.Fatalf("still waiting after 30 s on a FIFO at the journal's name (killed)")
			}
			if o.code != c.code {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", o.code, c.code, o.stdout, o.stderr)
			}
			if c.code == 0 {
				if !strings.Contains(o.stdout, c.out) {
					t.Fatalf("stdout %q, want %q", o.stdout, c.out)
				}
			} else {
				lines := strings.Split(strings.TrimSpace(o.stderr), "\n")
				if len(lines) != 1 || !strings.Contains(lines[0], path+".journal") || !strings.Contains(lines[0], "not a regular file") {
					t.Fatalf("stderr %q, want one error line naming %s.journal, not a regular file", o.stderr, path)
				}
				t.Logf("exit %d: %s", o.code, lines[0])
			}
			if after := dirState(t, base); after != before {
				t.Fatalf("the command changed the directory:\n%s\nto\n%s", before, after)
			}
		})
	}
}
