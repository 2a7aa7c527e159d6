package store_test

import (
	"testing"

	"github.com/ticketd/ticket/store/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m, map[string]func() int{"book": bookChild}) }
