package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/ticket"
)

// TestFullDisk puts a sale on a 2 MiB ext4 filesystem (a loop-mounted
// image, whose fsync is real), fills it, and buys until a buy fails: that
// buy exits 1 saying the device has no space left, the ticket file and the
// journal still hold the last committed sale (verify passes, nothing
// pending, no PATH.tmp), and once space is freed buying continues.
//
// It needs root (to mount) and mkfs.ext4 (Debian: e2fsprogs) and mount
// (util-linux); without them it skips, saying which.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop device needs root (CI runs as root)")
	}
	for _, tool := range []string{"mkfs.ext4", "mount", "umount", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (Debian: apt-get install e2fsprogs util-linux mount): %v", tool, err)
		}
	}
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-b", "1024", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an ext4 image here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
		// mount -o loop detaches on umount; detach whatever is left anyway.
		out, _ := exec.Command("losetup", "-j", img).Output()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if dev, _, ok := strings.Cut(line, ":"); ok {
				_ = exec.Command("losetup", "-d", dev).Run()
			}
		}
	})

	path := filepath.Join(mnt, "tickets.json")
	if o := runCaptured(t, "init", "-f", path, "--count", "100000"); o.code != 0 {
		t.Fatalf("init: %+v", o)
	}
	committed := 0
	buy := func() outcome {
		o := runCaptured(t, "buy", "-f", path, "--buyer", "b")
		if o.code == 0 {
			committed++
		}
		return o
	}
	for range 3 {
		if o := buy(); o.code != 0 {
			t.Fatalf("buy on an empty disk: %+v", o)
		}
	}
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)

	var failed outcome
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("1000 buys succeeded on a full disk")
		}
		if failed = buy(); failed.code != 0 {
			break
		}
	}
	t.Logf("disk full after %d sales: exit %d: %s", committed, failed.code, strings.TrimSpace(failed.stderr))
	if failed.code != exitError || !strings.Contains(failed.stderr, "the disk is full: no space left on device") {
		t.Fatalf("the buy on a full disk: exit %d, stderr %q; want 1 and \"the disk is full\"", failed.code, failed.stderr)
	}
	checkCommitted(t, path, committed)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if o := buy(); o.code != 0 {
		t.Fatalf("buy after freeing space: %+v", o)
	}
	checkCommitted(t, path, committed)
}

// checkCommitted checks that the ticket file and the journal hold exactly
// the committed sales, with nothing pending and no temporary file.
func checkCommitted(t *testing.T, path string, committed int) {
	t.Helper()
	o := runCaptured(t, "verify", "-f", path, "--json")
	if o.code != 0 || strings.Contains(o.stdout, "pending") {
		t.Fatalf("verify: exit %d: %s%s", o.code, o.stdout, o.stderr)
	}
	sales := 0
	for r, err := range store.Open(path, store.Options{}).Sales() {
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == ticket.KindSale {
			sales++
		}
	}
	if sales != committed {
		t.Fatalf("the journal holds %d sales, want the %d committed", sales, committed)
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Fatalf("%s.tmp left behind", path)
	}
}

// fill writes to path until the filesystem has no space left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{64 << 10, 1 << 10, 1} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
}
