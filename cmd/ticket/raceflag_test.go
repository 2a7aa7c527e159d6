//go:build race

package main

// With go test -race, the ticket program the tests start is built with
// -race too, so that the rush's own goroutines are checked.
func init() { buildFlags = append(buildFlags, "-race") }
