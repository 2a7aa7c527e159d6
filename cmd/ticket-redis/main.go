// Command ticket-redis is the ticket command with Redis sales
// (--store redis://HOST:PORT/DB?name=SALE) as well as files: the same
// command line, linked with the Redis client. ticket, which buys from
// files and links no Redis client, runs it for a command line that names
// a Redis sale, so that users run ticket alone; it may be run directly.
// go install ./cmd/... installs both.
package main

import (
	"os"

	"github.com/ticketd/ticket/cmd/internal/cli"
	"github.com/ticketd/ticket/cmd/internal/cliredis"
)

func main() {
	cli.OpenRedis = func(spec string) (cli.RedisSale, error) {
		s, err := cliredis.Open(spec)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	os.Exit(cli.Main(os.Args[1:]))
}
