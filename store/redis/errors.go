package redis

import (
	"github.com/ticketd/ticket/store"
	"github.com/ticketd/ticket/store/redis/redisspec"
	"github.com/ticketd/ticket/ticket"
)

// The names a caller branches on, declared in package redisspec, which a
// program that names sales without talking to Redis imports alone.
var (
	// ErrRequestID: see redisspec.ErrRequestID.
	ErrRequestID = redisspec.ErrRequestID
	// ErrForeignRecord: see redisspec.ErrForeignRecord.
	ErrForeignRecord = redisspec.ErrForeignRecord
)

type (
	// RequestMismatchError: see redisspec.RequestMismatchError.
	RequestMismatchError = redisspec.RequestMismatchError
	// OutcomeUnknownError: see redisspec.OutcomeUnknownError.
	OutcomeUnknownError = redisspec.OutcomeUnknownError
	// StateMissingError: see redisspec.StateMissingError.
	StateMissingError = redisspec.StateMissingError
)

// dialError is a connection that could not be made: nothing was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// existsError is a sale that exists where a new one was to be made:
// store.ErrExists.
type existsError struct{ where string }

func (e *existsError) Error() string        { return e.where + " already exists" }
func (e *existsError) Is(target error) bool { return target == store.ErrExists }

// interruptedError is a call abandoned because its context was cancelled
// (a signal): whatever it sent may still be run by the server.
type interruptedError struct{ err error }

func (e *interruptedError) Error() string { return "interrupted: " + e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// notFoundError is a sale without a state or a journal: store.ErrNotFound.
type notFoundError struct{ where string }

func (e *notFoundError) Error() string        { return e.where + " does not exist (no state, no journal)" }
func (e *notFoundError) Is(target error) bool { return target == store.ErrNotFound }

// journalError is a journal that does not balance or cannot be read as
// one: store.ErrJournal and ticket.ErrInvalid.
type journalError struct{ where, problem string }

func (e *journalError) Error() string { return e.where + ": " + e.problem }
func (e *journalError) Is(target error) bool {
	return target == store.ErrJournal || target == ticket.ErrInvalid
}
