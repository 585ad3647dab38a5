package rules

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRulesDocumented keeps docs/rules.md in step with the catalog: one
// section per rule, in catalog order, each saying what, why, impact, fix
// and references.
func TestRulesDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("(?m)^## `([a-z-]+)`$")
	var documented []string
	sections := heading.Split(string(b), -1)[1:]
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		documented = append(documented, m[1])
	}
	var want []string
	for _, r := range Catalog() {
		want = append(want, r.ID)
	}
	want = append(want, RemediationConflict, RemediationMeasuredSlower)
	if diff := cmp.Diff(want, documented); diff != "" {
		t.Errorf("docs/rules.md sections differ from the catalog (-catalog +docs):\n%s", diff)
	}
	for i, sec := range sections {
		for _, part := range []string{"**What:**", "**Why:**", "**Impact:**", "**Fix", "**References:**"} {
			if !strings.Contains(sec, part) {
				t.Errorf("section %s lacks %s", documented[i], part)
			}
		}
	}
	for _, r := range Catalog() {
		i := slices.Index(documented, r.ID)
		if i < 0 {
			continue
		}
		if auto := strings.Contains(sections[i], "**Fix (automatic"); auto != r.Auto {
			t.Errorf("%s: catalog says Auto=%v, docs say automatic=%v", r.ID, r.Auto, auto)
		}
	}
}
