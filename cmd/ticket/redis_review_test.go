package main

import (
	"context"
	"strings"
	"testing"

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
