package cli

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite cmd/ticket/COMMANDS.md from the commands' help")

// commandsDoc is the command reference generated from the help.
var commandsDoc = filepath.Join(moduleRoot, "cmd", "ticket", "COMMANDS.md")

// helpOf runs args in-process and returns stdout, failing unless it exits 0
// with nothing on stderr.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 || errOut.Len() > 0 {
		t.Fatalf("ticket %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut.String())
	}
	return out.String()
}

// TestEveryHelp: each command's help is one text, printed alike by
// "ticket help NAME" and "ticket NAME -h"; its usage line names every
// flag of its own, booleans are shown bare (--force) and numbers as N,
// and its exit statuses are rows of the one table (exitStatuses).
func TestEveryHelp(t *testing.T) {
	common := map[string]bool{"help": true, "file": true, "store": true, "json": true, "no-sync": true}
	for _, cmd := range commands {
		h := helpOf(t, "help", cmd.name)
		if dash := helpOf(t, cmd.name, "-h"); dash != h {
			t.Errorf("ticket help %s and ticket %s -h differ:\n%s\n---\n%s", cmd.name, cmd.name, h, dash)
		}
		usage, _, _ := strings.Cut(h, "\n\n")
		if !strings.HasPrefix(usage, "Usage: ticket "+cmd.name+" ") {
			t.Errorf("ticket %s -h starts %q", cmd.name, usage)
		}
		flags := regexp.MustCompile(`(?m)^  (?:-\w, )?\s*--([a-z-]+)(?: (\S+))?  `).FindAllStringSubmatch(h, -1)
		if len(flags) == 0 {
			t.Errorf("ticket %s -h lists no flags", cmd.name)
		}
		for _, f := range flags {
			if !common[f[1]] && !strings.Contains(usage, "--"+f[1]) {
				t.Errorf("ticket %s: the usage line %q omits --%s", cmd.name, usage, f[1])
			}
			if f[2] == "string" || f[2] == "int64" || f[2] == "duration" {
				t.Errorf("ticket %s: --%s takes a %q: name the value (N, D, PATH)", cmd.name, f[1], f[2])
			}
		}
		for _, bad := range []string{"[=true|false]", "(default \"", "seed"} {
			if strings.Contains(h, bad) {
				t.Errorf("ticket %s -h shows %q", cmd.name, bad)
			}
		}
		_, exits, ok := strings.Cut(h, "\nExit status:\n")
		if !ok {
			t.Errorf("ticket %s -h has no exit statuses", cmd.name)
			continue
		}
		for _, line := range strings.Split(strings.TrimSuffix(exits, "\n"), "\n") {
			var code int
			var rest string
			if _, err := fmt.Sscanf(line, "%d %s", &code, &rest); err != nil {
				t.Errorf("ticket %s -h: exit status line %q", cmd.name, line)
				continue
			}
			name, _ := exitEntry(code) // panics if the code is not in the table
			if !strings.Contains(line, name+": ") {
				t.Errorf("ticket %s -h: %q does not name status %d as the table does (%s)", cmd.name, line, code, name)
			}
		}
	}
	main := helpOf(t, "--help")
	if !strings.Contains(main, exitTable()) || !strings.Contains(main, "--version") {
		t.Errorf("ticket --help lacks the table of exit statuses or --version:\n%s", main)
	}
}

// commandsMarkdown is cmd/ticket/COMMANDS.md: the main help and each
// command's, as the program prints them.
func commandsMarkdown(t *testing.T) []byte {
	var b bytes.Buffer
	b.WriteString("# ticket commands\n\n")
	b.WriteString("<!-- Generated from the commands' help by: go test ./cmd/internal/cli -run TestCommandsDoc -update. Do not edit. -->\n\n")
	b.WriteString("The help of every command, as `ticket help COMMAND` (or `ticket COMMAND -h`) prints it.\n\n")
	for _, cmd := range commands {
		fmt.Fprintf(&b, "- [ticket %s](#ticket-%s): %s\n", cmd.name, cmd.name, cmd.summary)
	}
	fmt.Fprintf(&b, "\n## ticket\n\n```\n%s```\n", helpOf(t, "--help"))
	for _, cmd := range commands {
		fmt.Fprintf(&b, "\n## ticket %s\n\n```\n%s```\n", cmd.name, helpOf(t, "help", cmd.name))
	}
	return b.Bytes()
}

// TestCommandsDoc: cmd/ticket/COMMANDS.md is the commands' help as they
// print it; -update rewrites it.
func TestCommandsDoc(t *testing.T) {
	t.Setenv("TICKET_STORE", "") // the help says what the default is, not what it is here
	t.Setenv("TICKET_FILE", "")
	want := commandsMarkdown(t)
	if *update {
		if err := os.WriteFile(commandsDoc, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(commandsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with the commands' help: run go test ./cmd/internal/cli -run TestCommandsDoc -update", commandsDoc)
	}
}

// TestReadmeExitTable: README.md shows the table of exit statuses
// exactly as exitStatuses has it.
func TestReadmeExitTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), exitTableMarkdown()) {
		t.Errorf("README.md does not hold the table of exit statuses as exit.go has it; it should read:\n%s", exitTableMarkdown())
	}
}
