package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ticketd/ticket/store/redis/redistest"
)

// TestRushBooking: a booking rush of real buyer processes ends with every
// ticket held sold or back in stock, and its counts add up, by its own
// summary and by ticket verify and the journal read apart from it. It
// waits for the state (the rush waits for the holds' expiry and records
// the lapses), never asserts a time: a confirm that comes after its hold
// lapsed on a slow machine is "late", a hold's ticket may come back for a
// later buyer, and the assertions allow both.
func TestRushBooking(t *testing.T) {
	for _, tc := range []struct {
		name           string
		buyers, count  int
		qty            int64
		confirm        string // "" for the default, 50
		pct            int64
		hold           string // --hold
		wantToConfirm  int
		wantHoldsAtMin int // at least this many holds: the stock, before any lapse returns tickets
	}{
		{"8 buyers for 6 tickets, half confirm", 8, 6, 1, "", 50, "300ms", 4, 6},
		{"6 buyers of 2 for 20 tickets, a quarter confirm", 6, 20, 2, "25", 25, "300ms", 1, 6},
		{"4 buyers, none confirm", 4, 4, 1, "0", 0, "100ms", 0, 4},
		{"3 buyers, all confirm", 3, 5, 1, "100", 100, "5s", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-f", "t.json", "--buyers", strconv.Itoa(tc.buyers), "--count", strconv.Itoa(tc.count), "--qty", strconv.FormatInt(tc.qty, 10), "--hold", tc.hold}
			if tc.confirm != "" {
				args = append(args, "--confirm", tc.confirm)
			}
			code, sum, errOut := rushResult(t, dir, args...)
			if code != exitOK {
				t.Fatalf("exit %d, want 0; problems %q\nstderr:\n%s", code, sum.Problems, errOut)
			}
			b := sum.Booking
			if b == nil {
				t.Fatalf("no booking in the summary: %+v", sum)
			}
			if b.ConfirmPercent != tc.pct || b.ToConfirm != tc.wantToConfirm {
				t.Errorf("confirm %d%%, %d to confirm; want %d%%, %d", b.ConfirmPercent, b.ToConfirm, tc.pct, tc.wantToConfirm)
			}
			// Every buyer reported once, with the outcome its index allows.
			seen := map[string]bool{}
			holds, confirmed, lapsed, late, soldOut := 0, 0, 0, 0, 0
			for _, r := range sum.Results {
				i, err := strconv.Atoi(strings.TrimPrefix(r.Buyer, "person"))
				if err != nil || seen[r.Buyer] {
					t.Fatalf("buyer %q: bad name or reported twice", r.Buyer)
				}
				seen[r.Buyer] = true
				want := map[bool][]string{true: {"confirmed", "late", "sold_out"}, false: {"lapsed", "sold_out"}}[confirms(i, tc.pct)]
				if !strings.Contains(" "+strings.Join(want, " ")+" ", " "+r.Outcome+" ") || r.Confirm != confirms(i, tc.pct) {
					t.Errorf("%s (confirm %v): outcome %q, want one of %q (error %q)", r.Buyer, r.Confirm, r.Outcome, want, r.Error)
				}
				switch r.Outcome {
				case "confirmed":
					confirmed++
				case "lapsed":
					lapsed++
				case "late":
					late++
				case "sold_out":
					soldOut++
				}
				if r.Outcome != "sold_out" {
					holds++
					if r.Hold == "" || r.Expires == nil {
						t.Errorf("%s: %s without a hold id or expiry", r.Buyer, r.Outcome)
					}
				}
			}
			if len(seen) != tc.buyers {
				t.Errorf("%d buyers reported, want %d", len(seen), tc.buyers)
			}
			q := tc.qty
			switch {
			case b.Holds != holds || b.Confirmed != confirmed || b.Lapsed != lapsed || b.Late != late || sum.SoldOut != soldOut || sum.Errors != 0:
				t.Errorf("summary: %d holds, %d confirmed, %d lapsed, %d late, %d sold out, %d errors; the results say %d, %d, %d, %d, %d, 0",
					b.Holds, b.Confirmed, b.Lapsed, b.Late, sum.SoldOut, sum.Errors, holds, confirmed, lapsed, late, soldOut)
			case holds < tc.wantHoldsAtMin || holds+soldOut != tc.buyers:
				t.Errorf("%d holds and %d sold out of %d buyers, want at least %d holds", holds, soldOut, tc.buyers, tc.wantHoldsAtMin)
			case b.HeldTickets != int64(holds)*q || b.SoldTickets != int64(confirmed)*q || b.BackTickets != int64(lapsed+late)*q:
				t.Errorf("tickets: %d held, %d sold, %d back; want %d, %d, %d", b.HeldTickets, b.SoldTickets, b.BackTickets, int64(holds)*q, int64(confirmed)*q, int64(lapsed+late)*q)
			case b.HeldTickets != b.SoldTickets+b.BackTickets || b.HeldNow != 0:
				t.Errorf("%d held, %d sold, %d back, %d held now: not every ticket ended sold or back", b.HeldTickets, b.SoldTickets, b.BackTickets, b.HeldNow)
			case sum.Left != int64(tc.count)-b.SoldTickets || sum.Got != confirmed || sum.Told != b.SoldTickets:
				t.Errorf("left %d, got %d, told %d; want %d, %d, %d", sum.Left, sum.Got, sum.Told, int64(tc.count)-b.SoldTickets, confirmed, b.SoldTickets)
			case !b.AllAccounted || !sum.Balanced || len(sum.Problems) != 0 || b.Settled != "ok":
				t.Errorf("accounted %v, balanced %v, settled %q, problems %q", b.AllAccounted, sum.Balanced, b.Settled, sum.Problems)
			case b.JournalHolds != holds || b.JournalConfirm != confirmed || b.JournalLapses != lapsed+late:
				t.Errorf("journal as the rush counted it: %d holds, %d confirms, %d lapses; want %d, %d, %d", b.JournalHolds, b.JournalConfirm, b.JournalLapses, holds, confirmed, lapsed+late)
			}

			// Apart from the rush: verify, the journal, the ticket file.
			if code, out, errOut := ticketRun(t, dir, "verify", "-f", "t.json"); code != exitOK {
				t.Errorf("ticket verify: exit %d\n%s%s", code, out, errOut)
			}
			_, sales, _ := ticketRun(t, dir, "show", "-f", "t.json", "--sales", "--json")
			kinds := map[string]int{}
			for _, l := range strings.Fields(sales) {
				var r struct{ Kind, Reason, Buyer string }
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatalf("journal line %s: %v", l, err)
				}
				kinds[r.Kind+r.Reason]++
			}
			want := map[string]int{"init": 1, "hold": holds, "confirm": confirmed, "releaselapsed": lapsed + late}
			for k, n := range want {
				if kinds[k] != n {
					t.Errorf("journal: %d %q records, want %d (all: %v)", kinds[k], k, n, kinds)
				}
				delete(kinds, k)
			}
			for k, n := range kinds {
				if n != 0 {
					t.Errorf("journal: %d unexpected %q records", n, k)
				}
			}
			var file struct {
				Count, Total, Sold int64
				Held               *int64
			}
			data, err := os.ReadFile(filepath.Join(dir, "t.json"))
			if err == nil {
				err = json.Unmarshal(data, &file)
			}
			if err != nil || file.Count != sum.Left || file.Sold != b.SoldTickets || file.Total != int64(tc.count) || (file.Held != nil && *file.Held != 0) {
				t.Errorf("ticket file %s (%v): want count %d, sold %d, total %d, none held", data, err, sum.Left, b.SoldTickets, tc.count)
			}
			t.Logf("%d buyers: %d holds, %d confirmed, %d late, %d lapsed, %d sold out; waited %.0fms for the lapses", tc.buyers, holds, confirmed, late, lapsed, soldOut, b.WaitedSeconds*1e3)
		})
	}
}

// TestRushBookingSeesHeldTickets is the control of the booking rush's
// check: a hold taken before the rush, by another buyer and for an hour,
// is still held when the rush's own holds have lapsed, and the rush says
// the books do not balance (exit 5) instead of "every ticket ended sold or
// back in stock".
func TestRushBookingSeesHeldTickets(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "-f", "t.json", "--count", "5"); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	if code, _, errOut := ticketRun(t, dir, "hold", "-f", "t.json", "--buyer", "other", "--for", "1h"); code != exitOK {
		t.Fatalf("hold: exit %d: %s", code, errOut)
	}
	code, sum, errOut := rushResult(t, dir, "-f", "t.json", "--buyers", "3", "--hold", "100ms")
	if code != exitInvalid || sum.Balanced || sum.Booking == nil || sum.Booking.AllAccounted || sum.Booking.HeldNow != 1 {
		t.Fatalf("exit %d, balanced %v, booking %+v; want exit 5, not balanced, 1 held now\nstderr:\n%s", code, sum.Balanced, sum.Booking, errOut)
	}
	if !strings.Contains(strings.Join(sum.Problems, "\n"), "1 ticket is still held") {
		t.Errorf("problems %q do not say a ticket is still held", sum.Problems)
	}
	_, out, _ := ticketRun(t, dir, "rush", "-f", "t.json", "--buyers", "1", "--hold", "100ms")
	if !strings.Contains(out, "DO NOT balance") || strings.Contains(out, "every ticket held ended") {
		t.Errorf("text summary with a ticket still held:\n%s", out)
	}
}

func TestRushBookingRefuses(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := ticketRun(t, dir, "init", "-f", "t.json", "--count", "3"); code != exitOK {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "t.json"))
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"hold 0", "--hold D must be more than 0", []string{"--hold", "0"}},
		{"negative hold", "negative", []string{"--hold", "-1s"}},
		{"confirm 150", "--confirm 150: want a percentage of the buyers, 0 to 100", []string{"--hold", "1s", "--confirm", "150"}},
		{"confirm without hold", "--confirm P only goes with --hold D", []string{"--confirm", "50"}},
		{"hold with unlocked", "--hold does not go with --unlocked", []string{"--hold", "1s", "--unlocked"}},
		{"hold with no-sync", "--hold does not go with --no-sync", []string{"--hold", "1s", "--no-sync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"rush", "-f", "t.json", "--buyers", "2"}, tc.args...)
			code, out, errOut := ticketRun(t, dir, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want 2\nstderr: %s", code, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.HasPrefix(errOut, "ticket rush: error: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want one error line saying %q", errOut, tc.want)
			}
		})
	}
	after, _ := os.ReadFile(filepath.Join(dir, "t.json"))
	if !bytes.Equal(before, after) {
		t.Errorf("t.json changed from %q to %q", before, after)
	}
}

// TestRushBookingRedis: the booking rush on a Redis sale: every ticket held
// ends sold or back in stock, checked against the sale, ticket verify and
// the journal, as on a file.
func TestRushBookingRedis(t *testing.T) {
	spec := redistest.Start(t).URL("rushbook")
	code, sum, errOut := rushResult(t, t.TempDir(), "--store", spec, "--buyers", "8", "--count", "6", "--hold", "300ms")
	if code != exitOK {
		t.Fatalf("exit %d, want 0; problems %q\nstderr:\n%s", code, sum.Problems, errOut)
	}
	b := sum.Booking
	if b == nil || b.Settled != "ok" || b.HeldNow != 0 || b.ToConfirm != 4 {
		t.Fatalf("booking summary: %+v", b)
	}
	if o := runCaptured(t, "verify", "--store", spec); o.code != exitOK {
		t.Fatalf("verify: %+v", o)
	}
}
