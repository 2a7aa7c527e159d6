package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// help is the help of the command name: its usage line, what it does,
// its flags and its exit statuses. Each command's run function gives
// these once, to flagSet; "ticket help NAME", "ticket NAME -h" and
// cmd/ticket/COMMANDS.md (TestCommandsDoc) all print this text.
func help(name, synopsis, about string, fs *pflag.FlagSet, exits []exitNote) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: ticket %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(about))
	b.WriteString("\nFlags:\n")
	b.WriteString(flagUsages(fs))
	if len(exits) > 0 {
		b.WriteString("\nExit status:\n")
		b.WriteString(exitLines(exits))
	}
	return b.String()
}

// flagUsages lists the flags that are not hidden, one a line, in the order
// they were defined: a boolean flag as --force (never --force[=true|false]),
// a flag with a value as --count N, where the value's name is the word in
// backquotes in the flag's usage, else its type's (whole numbers N,
// durations D). A default is shown when it is not the zero value; the
// sale's default, which comes from the environment, is said in words.
func flagUsages(fs *pflag.FlagSet) string {
	type row struct{ left, usage string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		left := "    "
		if f.Shorthand != "" {
			left = "-" + f.Shorthand + ", "
		}
		left += "--" + f.Name
		varname, usage := pflag.UnquoteUsage(f)
		switch {
		case f.Value.Type() == "bool":
			varname = ""
		case varname == "duration":
			varname = "D"
		case varname == "string":
			varname = "STRING"
		}
		if varname != "" {
			left += " " + varname
		}
		switch f.DefValue {
		case "", "0", "false", "[]":
		default:
			if f.Name != "file" && f.Name != "store" {
				usage += " (default " + f.DefValue + ")"
			}
		}
		rows = append(rows, row{left, usage})
		width = max(width, len(left))
	})
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, r.left, r.usage)
	}
	return b.String()
}
