package policy

import (
	"fmt"
	"strings"
)

// levenshtein is the edit distance between a and b, by runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// closest returns the candidate nearest to word, or "" when none is near enough to be a typo.
// A case-insensitive match always wins.
func closest(word string, candidates []string) string {
	for _, c := range candidates {
		if strings.EqualFold(c, word) {
			return c
		}
	}
	if len([]rune(word)) >= 3 {
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), strings.ToLower(word)) {
				return c
			}
		}
	}
	best, bestD := "", -1
	limit := max(2, len([]rune(word))/3)
	for _, c := range candidates {
		d := levenshtein(word, c)
		if d > limit || d >= len([]rune(word)) || d >= len([]rune(c)) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// didYouMean renders "; did you mean "x"?" for the nearest candidate, "" when there is none.
func didYouMean(word string, candidates []string) string {
	if c := closest(word, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// hint suggests the nearest candidate or, when none is near, lists them all.
func hint(word string, candidates []string) string {
	if s := didYouMean(word, candidates); s != "" {
		return s
	}
	if len(candidates) == 0 {
		return ""
	}
	if len(candidates) > 12 {
		return "; expected one of " + strings.Join(candidates[:12], ", ") + ", …"
	}
	return "; expected one of " + strings.Join(candidates, ", ")
}

// Closest returns the candidate nearest to word, close enough to be a typo of it, or "" when
// none is; the events parser and the CLI suggest with it as the loader does.
func Closest(word string, candidates []string) string { return closest(word, candidates) }
