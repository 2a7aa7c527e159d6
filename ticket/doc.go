// Package ticket is the domain of a ticket sale: the state of the stock,
// the rule that decides whether a buy may happen, the strict formats of the
// ticket file and of a sales-journal record, and the sentinel errors that
// callers map to outcomes.
//
// It does no I/O. Reading, locking and writing files is package store's job;
// flags, printing and exit codes belong to the command in cmd/ticket.
//
// The ticket file is a JSON object whose "count" member is always the number
// of tickets left, e.g. the seed's {"count": 5}. Parsing is strict, because a
// file the store cannot understand must never be rewritten: see Parse for the
// exact rules.
//
// # Holds, returns and a per-buyer limit
//
// A hold takes tickets out of "count" into "held" until it expires; a
// confirm turns it into a sale, a release (asked for, or because it
// lapsed) puts its tickets back. A return puts tickets of a committed sale
// back; a restock adds tickets, a removal takes them out of what is left.
// Total = Left + Held + Sold always holds in the books (State.Consistent).
// Every such change is a journal record of its own kind (see Kind), and
// State.Next is the one transition they all go through.
//
// What a decision needs is at hand without reading the journal, however
// long it is:
//
//   - "held", the tickets in open holds, lives in the ticket file; the
//     open holds themselves (id, buyer, qty, expiry) do not: they grow
//     with what is held, and the store keeps them in an index by id and by
//     expiry, so that a confirm finds its hold with one look-up and expiry
//     takes the holds that expired from the front of a queue (State.Lapse
//     turns them into release records). Nothing runs in the background:
//     whoever next holds the lock records the lapses, and a reader counts
//     them without writing.
//   - "limit" lives in the ticket file; each buyer's holding under it
//     (bought and not returned, plus held) does not: it grows with the
//     buyers, not with what is for sale now. Record.Holding is the one rule
//     by which a record changes it, and the backends keep it by that rule
//     in an index (a file beside the journal, a Redis hash), so that the
//     limit rule (State.Allowed) is one look-up.
//
// A sale that never holds and has no limit has none of these members, and
// its ticket file stays byte for byte what it was before they existed.
// Only what is rare reads back into the journal: a confirm of a hold that
// is no longer open (to report its first outcome), a return (to find its
// sale), and a new limit refused (to name a buyer above it).
package ticket
