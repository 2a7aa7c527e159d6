package cli

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofrs/flock"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketd/ticket/store/redis/redistest"
)

// TestRedisBuyACLReadDenied (review finding 04): real ticket processes
// buy as a Redis user whose ACL denies one command the buy script reads
// with (XRANGE, TIME, HGET, in turn). Each buy exits 7 saying nothing was
// bought, and it is true: after three of them the sale still has all its
// tickets and an empty journal. (Before the fix the script read after its
// writes: each buy sold a ticket while saying nothing was bought.)
func TestRedisBuyACLReadDenied(t *testing.T) {
	srv := redistest.Start(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer admin.Close()
	for _, cmd := range []string{"xrange", "time", "hget"} {
		t.Run(cmd, func(t *testing.T) {
			spec := srv.URL("deny-" + cmd)
			if o := runCaptured(t, "init", "--store", spec, "--count", "5"); o.code != exitOK {
				t.Fatalf("init: %+v", o)
			}
			user := "buyer-" + cmd
			if err := admin.Do(context.Background(), "ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-"+cmd).Err(); err != nil {
				t.Fatal(err)
			}
			userSpec := strings.Replace(spec, "redis://", "redis://"+user+":pw@", 1)
			var buys []outcome
			for range 3 {
				buys = append(buys, runCaptured(t, "buy", "--store", userSpec, "--buyer", "alice"))
			}
			o := runCaptured(t, "show", "--store", spec, "--json")
			if o.code != exitOK || !strings.Contains(o.stdout, `"left":5`) {
				t.Errorf("show after 3 refused buys: exit %d, %s%s; want 5 left", o.code, o.stdout, o.stderr)
			}
			if n := admin.XLen(context.Background(), "ticket:{deny-"+cmd+"}:journal").Val(); n != 0 {
				t.Errorf("the journal holds %d sales after 3 refused buys", n)
			}
			for i, o := range buys {
				if o.code != exitUnreachable || !strings.Contains(o.stderr, "nothing was bought") || !strings.Contains(o.stderr, "ACL") {
					t.Errorf("buy %d: exit %d, stderr %q; want 7, the ACL named, nothing bought", i, o.code, o.stderr)
				}
			}
		})
	}
}

// TestRedisPasswordNeverPrinted (review finding 05): with the password in
// the URL, no command's output, human or --json, results or errors (init,
// buy, show, verify, repair, copy both ways, a refused init and copy, a
// lost reply), carries the password in any form; the command printed to
// retry a lost buy says where the password goes (TICKET_REDIS_PASSWORD)
// and, run as printed with it there, replays the sale. (Before the fix
// results printed the URL with its password, and the retry command had
// ":xxxxx@" in it, which failed authentication.)
func TestRedisPasswordNeverPrinted(t *testing.T) {
	const password = "Sekr1t-p@ss"
	srv := redistest.Start(t, "--requirepass", password)
	t.Setenv("TICKET_REDIS_PASSWORD", "")
	withPassword := func(name string) string {
		return strings.Replace(srv.URL(name), "redis://", "redis://:"+url.QueryEscape(password)+"@", 1)
	}
	spec, other := withPassword("pw"), withPassword("pw2")
	file := filepath.Join(t.TempDir(), "t.json")
	var all []outcome
	run := func(want int, args ...string) outcome {
		t.Helper()
		o := runCaptured(t, args...)
		if o.code != want {
			t.Errorf("%v: exit %d, want %d: %s%s", args, o.code, want, o.stdout, o.stderr)
		}
		all = append(all, o)
		return o
	}
	for _, j := range [][]string{nil, {"--json"}} {
		run(exitOK, append([]string{"init", "--store", spec, "--count", "9", "--force"}, j...)...)
		run(exitError, append([]string{"init", "--store", spec, "--count", "9"}, j...)...)
		run(exitOK, append([]string{"buy", "--store", spec, "--buyer", "ann"}, j...)...)
		run(exitOK, append([]string{"show", "--store", spec}, j...)...)
		run(exitOK, append([]string{"show", "--sales", "--store", spec}, j...)...)
		run(exitOK, append([]string{"verify", "--store", spec}, j...)...)
		run(exitOK, append([]string{"repair", "--store", spec}, j...)...)
		run(exitOK, append([]string{"copy", spec, file, "--force"}, j...)...)
		run(exitError, append([]string{"copy", spec, file}, j...)...)
		run(exitOK, append([]string{"copy", file, other, "--force"}, j...)...)
		run(exitError, append([]string{"copy", file, other}, j...)...)
	}
	drop := redistest.StartProxy(t, srv.Addr(), redistest.DropScriptReply)
	lost := run(exitUnreachable, "buy", "--store", drop.URL(spec), "--buyer", "bob", "--json")
	for _, o := range all {
		for _, out := range []string{o.stdout, o.stderr} {
			if strings.Contains(out, "Sekr1t") {
				t.Errorf("the password is printed: %s", out)
			}
		}
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(lost.stdout), &fields); err != nil {
		t.Fatalf("stdout %q: %v", lost.stdout, err)
	}
	retry, _ := fields["retry"].(string)
	t.Logf("lost reply: %s", lost.stderr)
	if fields["outcome"] != "unknown" || retry == "" || !strings.Contains(lost.stderr, "TICKET_REDIS_PASSWORD") || fields["password_env"] != "TICKET_REDIS_PASSWORD" {
		t.Fatalf("lost reply: %v; want the retry command and where its password goes", fields)
	}
	args := shellWords(t, retry)
	cmd := capture(ticketCmd(args[1:]...))
	cmd.Env = append(cmd.Env, "TICKET_REDIS_PASSWORD="+password)
	o := finish(t, cmd, cmd.Run())
	if o.code != exitOK || !strings.Contains(o.stderr, "already answered") {
		t.Fatalf("the printed retry, with the password in TICKET_REDIS_PASSWORD: %+v; want the sale replayed", o)
	}
}

// TestRedisVerifyRepairAgree (review finding 11): on a Redis sale whose
// state is ahead of its journal (a sale missing from it), ticket verify
// exits 5 and ticket repair does too, never calling it sound; with its
// requests hash deleted, verify exits 5 naming it, repair restores it
// (exit 0) and verify then exits 0.
func TestRedisVerifyRepairAgree(t *testing.T) {
	srv := redistest.Start(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	for _, name := range []string{"ahead", "norequests"} {
		spec := srv.URL(name)
		if o := runCaptured(t, "init", "--store", spec, "--count", "5"); o.code != exitOK {
			t.Fatalf("init: %+v", o)
		}
		for range 2 {
			if o := runCaptured(t, "buy", "--store", spec); o.code != exitOK {
				t.Fatalf("buy: %+v", o)
			}
		}
	}
	last := c.XRevRangeN(ctx, "ticket:{ahead}:journal", "+", "-", 1).Val()
	c.XDel(ctx, "ticket:{ahead}:journal", last[0].ID)
	c.Del(ctx, "ticket:{norequests}:requests")
	for _, tc := range []struct{ name, says, repairSays string }{
		{"ahead", "state is at version 2", "could sell tickets again"},
		{"norequests", "lacks the request ids of 2 sales", "restored 2 request ids"},
	} {
		spec := srv.URL(tc.name)
		v := runCaptured(t, "verify", "--store", spec)
		if v.code != exitInvalid || !strings.Contains(v.stderr, tc.says) {
			t.Errorf("%s: verify: exit %d, %s; want 5 saying %q", tc.name, v.code, v.stderr, tc.says)
		}
		r := runCaptured(t, "repair", "--store", spec)
		if strings.Contains(r.stdout, "sound") || !strings.Contains(r.stdout+r.stderr, tc.repairSays) {
			t.Errorf("%s: repair: exit %d, %s%s; want it never sound, saying %q", tc.name, r.code, r.stdout, r.stderr, tc.repairSays)
		}
		again := runCaptured(t, "verify", "--store", spec)
		if (r.code == exitOK) != (again.code == exitOK) || (r.code != exitOK && r.code != exitInvalid) {
			t.Errorf("%s: repair exit %d, then verify exit %d: they disagree", tc.name, r.code, again.code)
		}
		t.Logf("%s: verify %d, repair %d (%s%s), verify %d", tc.name, v.code, r.code, r.stdout, r.stderr, again.code)
	}
}

// TestRedisCopyForeignRecords (review finding 12): a ticket file whose
// journal holds an "outside" record (a peer changed the count under the
// lock) is refused by ticket copy into Redis with one line saying why and
// what to do, and nothing is written to the server.
func TestRedisCopyForeignRecords(t *testing.T) {
	srv := redistest.Start(t)
	file := newTicketFile(t, "5")
	if err := os.WriteFile(file+".tmp", []byte(`{"count": 4, "total": 5, "sold": 0, "version": 0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	lock := flock.New(file + ".lock")
	if err := lock.Lock(); err != nil {
		t.Fatal(err)
	}
	err := os.Rename(file+".tmp", file)
	_ = lock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if o := runCaptured(t, "buy", "-f", file); o.code != exitOK || !strings.Contains(o.stderr, "outside") {
		t.Fatalf("buy after the peer's change: %+v; want the outside change recorded", o)
	}
	spec := srv.URL("foreign")
	o := runCaptured(t, "copy", file, spec)
	t.Logf("copy: %s", o.stderr)
	if o.code != exitError || strings.Count(o.stderr, "\n") != 1 || !strings.Contains(o.stderr, `kind "outside"`) || !strings.Contains(o.stderr, "ticket init --count N --store") {
		t.Fatalf("copy of a file with an outside record: exit %d, %q; want 1, one line saying why and what to do", o.code, o.stderr)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	if keys := c.Keys(context.Background(), "*").Val(); len(keys) != 0 {
		t.Fatalf("a refused copy wrote %v", keys)
	}
}
