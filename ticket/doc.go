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
package ticket
