// Package doclinks finds the relative links of Markdown files that point
// at nothing. Its test runs it over lwr's own documents.
package doclinks

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// link matches an inline Markdown link or image, [text](target) or
// ![alt](target), with an optional title after the target.
var link = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)

// fence matches a code block's fence line: links inside code are text.
var fence = regexp.MustCompile("^\\s*(```|~~~)")

// Broken returns the relative link targets of the Markdown text src (a
// file in folder dir) that name no file or folder, as "line: target".
// Links with a scheme (https:, mailto:) and bare anchors (#part) are not
// checked; a target's own anchor is dropped before the check.
func Broken(dir, src string) []string {
	var out []string
	inCode := false
	for i, line := range strings.Split(src, "\n") {
		if fence.MatchString(line) {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		line = stripCodeSpans(line)
		for _, m := range link.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
				continue
			}
			if k := strings.IndexByte(target, '#'); k >= 0 {
				target = target[:k]
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(target))); err != nil {
				out = append(out, strconv.Itoa(i+1)+": "+m[1])
			}
		}
	}
	return out
}

// stripCodeSpans blanks `code spans`, whose brackets are not links.
func stripCodeSpans(line string) string {
	var b strings.Builder
	in := false
	for _, r := range line {
		if r == '`' {
			in = !in
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}
