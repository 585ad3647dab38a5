package probes

import (
	"fmt"
	"io"
	"path"
	"strings"

	"mvdan.cc/sh/v3/syntax"

	"github.com/nodetune/nodetune/detect"
)

// ethtoolOffload is one `ethtool -K DEV feature on|off ...` found in a
// rule or script.
type ethtoolOffload struct {
	// Device is the device argument: a name, or "$VAR" for a variable,
	// or a udev substitution such as %k.
	Device   string
	Settings []detect.FeatureSetting
	Line     int
	LastLine int
	Text     string
	// Guards are, by variable, the literals an enclosing test compares it
	// with for the call to run: a case item, the then-branch of an if, or
	// the right side of && whose test is `$v = literal` (see scanShell).
	Guards map[string][]string

	start, end uint // the call's byte offsets in its script
}

// parseEthtoolOffload reads an ethtool command line, already split into
// words, and returns its offload settings; ok is false when words is not
// an ethtool -K/--features/--offload call with at least one setting.
func parseEthtoolOffload(words []string) (ethtoolOffload, bool) {
	if len(words) < 4 || path.Base(words[0]) != "ethtool" {
		return ethtoolOffload{}, false
	}
	i := 1
	for i < len(words) && words[i] != "-K" && words[i] != "--features" && words[i] != "--offload" {
		i++
	}
	if i+1 >= len(words) {
		return ethtoolOffload{}, false
	}
	out := ethtoolOffload{Device: words[i+1]}
	for j := i + 2; j+1 < len(words); j += 2 {
		var on bool
		switch words[j+1] {
		case "on":
			on = true
		case "off":
		default:
			j = len(words) // ethtool stops reading features here too
			continue
		}
		out.Settings = append(out.Settings, detect.FeatureSetting{Feature: words[j], On: on})
	}
	return out, len(out.Settings) > 0
}

// shellScan is what a shell script says about the devices it changes:
// its ethtool offload calls, the literal values of its variables, and the
// names it compares each variable with (its guards) anywhere.
type shellScan struct {
	calls  []ethtoolOffload
	vars   map[string]string
	guards map[string][]string
	// regions are the parts of the script that run only when a variable
	// equals one of some literals.
	regions []guardRegion
}

// guardRegion is a span of a script that runs only when variable v
// matches one of lits.
type guardRegion struct {
	start, end uint
	v          string
	lits       []string
}

// scanShell parses a POSIX or bash script and scans it. It reads no more
// than it is given; callers bound r.
func scanShell(r io.Reader, name string) (shellScan, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(r, name)
	if err != nil {
		return shellScan{}, fmt.Errorf("parsing %s as a shell script: %w", name, err)
	}
	sc := shellScan{vars: map[string]string{}, guards: map[string][]string{}}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			sc.call(n)
		case *syntax.BinaryTest:
			x, _ := n.X.(*syntax.Word)
			y, _ := n.Y.(*syntax.Word)
			sc.guard(wordText(x), wordText(y))
		case *syntax.CaseClause:
			v := wordText(n.Word)
			for _, item := range n.Items {
				var lits []string
				for _, p := range item.Patterns {
					sc.guard(v, wordText(p))
					lits = append(lits, wordText(p))
				}
				if name, ok := strings.CutPrefix(v, "$"); ok && len(item.Stmts) > 0 {
					sc.regions = append(sc.regions, guardRegion{item.Stmts[0].Pos().Offset(), item.Stmts[len(item.Stmts)-1].End().Offset(), name, lits})
				}
			}
		case *syntax.IfClause:
			if len(n.Cond) == 1 && len(n.Then) > 0 {
				if v, lit, ok := equalityTest(n.Cond[0]); ok {
					sc.regions = append(sc.regions, guardRegion{n.Then[0].Pos().Offset(), n.Then[len(n.Then)-1].End().Offset(), v, []string{lit}})
				}
			}
		case *syntax.BinaryCmd:
			if n.Op == syntax.AndStmt {
				if v, lit, ok := equalityTest(n.X); ok {
					sc.regions = append(sc.regions, guardRegion{n.Y.Pos().Offset(), n.Y.End().Offset(), v, []string{lit}})
				}
			}
		}
		return true
	})
	for i := range sc.calls {
		c := &sc.calls[i]
		for _, r := range sc.regions {
			if r.start <= c.start && c.end <= r.end {
				if c.Guards == nil {
					c.Guards = map[string][]string{}
				}
				c.Guards[r.v] = append(c.Guards[r.v], r.lits...)
			}
		}
	}
	return sc, nil
}

// equalityTest reports whether st is a test that holds only when a
// variable equals a literal ([ "$v" = lit ], test, [[ $v == lit ]]),
// and which. Negated tests, inequalities and compound tests are not.
func equalityTest(st *syntax.Stmt) (v, lit string, ok bool) {
	if st == nil || st.Negated {
		return "", "", false
	}
	var a, op, b string
	switch c := st.Cmd.(type) {
	case *syntax.CallExpr:
		words := make([]string, len(c.Args))
		for i, w := range c.Args {
			words[i] = wordText(w)
		}
		switch {
		case len(words) == 5 && words[0] == "[" && words[4] == "]", len(words) == 4 && words[0] == "test":
			a, op, b = words[1], words[2], words[3]
		default:
			return "", "", false
		}
	case *syntax.TestClause:
		t, isBinary := c.X.(*syntax.BinaryTest)
		if !isBinary || (t.Op != syntax.TsMatch && t.Op != syntax.TsMatchShort) {
			return "", "", false
		}
		x, _ := t.X.(*syntax.Word)
		y, _ := t.Y.(*syntax.Word)
		a, op, b = wordText(x), "=", wordText(y)
	default:
		return "", "", false
	}
	if op != "=" && op != "==" {
		return "", "", false
	}
	if strings.HasPrefix(b, "$") {
		a, b = b, a
	}
	name, isVar := strings.CutPrefix(a, "$")
	if !isVar || b == "" || strings.ContainsAny(b, "$?") {
		return "", "", false
	}
	return name, b, true
}

func (sc *shellScan) call(c *syntax.CallExpr) {
	if len(c.Args) == 0 {
		for _, a := range c.Assigns {
			if a.Value != nil && a.Name != nil {
				if v := wordText(a.Value); !strings.ContainsAny(v, "$?") {
					sc.vars[a.Name.Value] = v
				}
			}
		}
		return
	}
	words := make([]string, len(c.Args))
	for i, w := range c.Args {
		words[i] = wordText(w)
	}
	if words[0] == "[" || words[0] == "test" {
		for i := 2; i+1 < len(words); i++ {
			if op := words[i]; op == "=" || op == "==" || op == "!=" {
				sc.guard(words[i-1], words[i+1])
			}
		}
		return
	}
	e, ok := parseEthtoolOffload(words)
	if !ok {
		return
	}
	e.Line, e.LastLine = int(c.Pos().Line()), int(c.End().Line())
	e.start, e.end = c.Pos().Offset(), c.End().Offset()
	e.Text = strings.Join(words, " ")
	sc.calls = append(sc.calls, e)
}

// guard records that variable v (written "$v") is compared with literal.
func (sc *shellScan) guard(v, literal string) {
	if !strings.HasPrefix(v, "$") || literal == "" || strings.Contains(literal, "$") {
		v, literal = literal, v
	}
	if !strings.HasPrefix(v, "$") || literal == "" || strings.Contains(literal, "$") {
		return
	}
	name := strings.TrimPrefix(v, "$")
	sc.guards[name] = append(sc.guards[name], literal)
}

// wordText renders a shell word: literals as they are, quotes removed,
// and parameter expansions as "$NAME"; anything else as "?".
func wordText(w *syntax.Word) string {
	if w == nil {
		return ""
	}
	var b strings.Builder
	writeParts(&b, w.Parts)
	return b.String()
}

func writeParts(b *strings.Builder, parts []syntax.WordPart) {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			writeParts(b, p.Parts)
		case *syntax.ParamExp:
			if p.Param != nil {
				b.WriteString("$" + p.Param.Value)
			} else {
				b.WriteString("?")
			}
		default:
			b.WriteString("?")
		}
	}
}
