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
// What a decision needs lives in the ticket file itself, written in the
// same transaction as the journal record, so that no buy, hold or confirm
// scans the journal, however long it is:
//
//   - "held" and "holds", the open holds (id, buyer, qty, expiry), sorted
//     by expiry: at most one per ticket held, and gone from the file once
//     confirmed or released. Expiry (State.Expire) reads them from the
//     front and stops at the first that has not expired, so it costs in
//     proportion to the holds that expired, not to all of them. Nothing
//     runs in the background: whoever next holds the lock records the
//     lapses, and a reader counts them without writing.
//   - "limit", and with it "holders": each buyer's tickets bought and not
//     returned plus held, a buyer with none left out. It has at most one
//     entry per ticket, and the limit rule (State.Allowed) is one look-up
//     in it.
//
// A side file was the alternative; it would need its own atomic
// replacement and its own recovery after a crash, which the ticket file
// already has. The cost is that the ticket file grows with the open holds
// and, under a limit, with the buyers holding tickets (about 30 bytes
// each), and is rewritten whole on every change. A sale that never holds
// and has no limit has none of these members, and its ticket file stays
// byte for byte what it was before they existed. Only what is rare reads
// back into the journal: a confirm of a hold that is no longer open (to
// report its first outcome) and a return (to find its sale).
package ticket
