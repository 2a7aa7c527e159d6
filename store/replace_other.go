//go:build !linux

package store

import (
	"os"

	"github.com/ticketd/ticket/store/internal/files"
)

// reuseSpare needs a write lease to know that nobody has the spare open,
// which only Linux has: a new file is written each time.
func reuseSpare(path string, data []byte, l files.Like) (bool, error) { return false, nil }

// exchange renames tmpPath over path: swapping them in one step needs
// Linux's RENAME_EXCHANGE.
func exchange(tmpPath, path string) (bool, error) { return false, os.Rename(tmpPath, path) }
