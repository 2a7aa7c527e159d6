// Command benchchart draws what scripts/bench.sh measured: buys per second
// against the number of buyer processes, one line per system, one panel per
// file system, as an SVG image.
//
//	go run ./scripts/benchchart -title "..." < results.tsv > chart.svg
//
// Its input is bench.sh's results.tsv: one line per measurement,
// "FILESYSTEM<TAB>SYSTEM<TAB>PROCESSES<TAB>BUYS_PER_SECOND", with a header
// line first.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

type point struct {
	procs int
	rate  float64
}

func main() {
	title := flag.String("title", "buys per second", "the chart's title")
	flag.Parse()
	panels, systems, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
	if err := draw(os.Stdout, *title, panels, systems); err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
}

// read returns the measurements by file system, then system, and the
// systems in the order they first appear.
func read(r io.Reader) (map[string]map[string][]point, []string, error) {
	panels := map[string]map[string][]point{}
	var systems []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		if n == 1 || len(f) == 0 || f[0] == "" {
			continue // the header
		}
		if len(f) != 4 {
			return nil, nil, fmt.Errorf("line %d: want 4 fields separated by tabs, got %d", n, len(f))
		}
		p, err1 := strconv.Atoi(f[2])
		v, err2 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("line %d: processes and buys/s must be numbers: %q", n, sc.Text())
		}
		if panels[f[0]] == nil {
			panels[f[0]] = map[string][]point{}
		}
		panels[f[0]][f[1]] = append(panels[f[0]][f[1]], point{p, v})
		if !slices.Contains(systems, f[1]) {
			systems = append(systems, f[1])
		}
	}
	return panels, systems, sc.Err()
}

var colors = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

// draw writes the SVG: a panel per file system side by side, x the
// processes on a log scale, y the buys per second from 0.
func draw(w io.Writer, title string, panels map[string]map[string][]point, systems []string) error {
	var names []string
	for fs := range panels {
		names = append(names, fs)
	}
	slices.Sort(names)
	const pw, ph, left, top, gap = 420, 300, 70, 50, 60
	width := left + len(names)*(pw+gap) + 200
	height := top + ph + 70
	maxRate, minRate := 0.0, math.Inf(1)
	var procs []int
	for _, fs := range names {
		for _, pts := range panels[fs] {
			for _, p := range pts {
				maxRate = math.Max(maxRate, p.rate)
				if p.rate > 0 {
					minRate = math.Min(minRate, p.rate)
				}
				if !slices.Contains(procs, p.procs) {
					procs = append(procs, p.procs)
				}
			}
		}
	}
	slices.Sort(procs)
	if len(procs) == 0 {
		return fmt.Errorf("no measurements")
	}
	// A log scale: the peers differ by orders of magnitude.
	ymax := math.Pow(10, math.Ceil(math.Log10(math.Max(maxRate, 10))))
	ymin := math.Pow(10, math.Floor(math.Log10(math.Min(minRate, ymax/10))))
	x := func(i, p int) float64 {
		lo, hi := math.Log(float64(procs[0])), math.Log(float64(procs[len(procs)-1]))
		if hi == lo {
			return float64(left + i*(pw+gap) + pw/2)
		}
		return float64(left+i*(pw+gap)) + 20 + (math.Log(float64(p))-lo)/(hi-lo)*float64(pw-40)
	}
	y := func(v float64) float64 {
		v = math.Max(v, ymin)
		return float64(top+ph) - (math.Log10(v)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin))*float64(ph)
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	for i, fs := range names {
		x0 := left + i*(pw+gap)
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13">%s</text>`+"\n", x0, top-10, html.EscapeString(fs))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", x0, top, pw, ph)
		for decade := ymin; decade < ymax; decade *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := decade * m
				fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x0, x0+pw, y(v), y(v))
				fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-4, y(v)+4, human(v))
			}
		}
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-4, y(ymax)+4, human(ymax))
		for _, p := range procs {
			fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(i, p), top+ph+16, p)
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">buyer processes</text>`+"\n", x0+pw/2, top+ph+34)
		for si, sys := range systems {
			pts := slices.Clone(panels[fs][sys])
			if len(pts) == 0 {
				continue
			}
			slices.SortFunc(pts, func(a, b point) int { return a.procs - b.procs })
			c := colors[si%len(colors)]
			var path []string
			for _, p := range pts {
				path = append(path, fmt.Sprintf("%.1f,%.1f", x(i, p.procs), y(p.rate)))
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(i, p.procs), y(p.rate), c)
			}
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(path, " "), c)
		}
	}
	lx := left + len(names)*(pw+gap) - gap + 20
	for si, sys := range systems {
		c := colors[si%len(colors)]
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, lx+20, top+10+si*20, top+10+si*20, c)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", lx+26, top+14+si*20, html.EscapeString(sys))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555">buys per second, log scale (higher is better)</text>`+"\n", left, height-10)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// human writes a rate as 0, 500, 2.5k, 20k.
func human(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
