package call

import "strings"

func cutSemicolon(s string) (string, string, bool) {
	a, b, ok := strings.Cut(s, ";")
	return strings.TrimSpace(a), b, ok
}

func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
