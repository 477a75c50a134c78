package engine

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteExplain renders steps one per line, oldest first, details indented below:
//
//	2026-03-02T09:00:00Z  #41 event     sf status_changed AvailableforVoice
//	    rule away-on-break: status is not Break
func WriteExplain(w io.Writer, email string, steps []Step) {
	fmt.Fprintf(w, "%s: %d step(s), oldest first\n", email, len(steps))
	for _, st := range steps {
		fmt.Fprintf(w, "%s  #%d %-9s %s", st.At.UTC().Format(time.RFC3339), st.Seq, st.Kind, oneLine(st.Summary))
		var tags []string
		if st.System != "" {
			tags = append(tags, "system="+st.System)
		}
		if st.Status != "" {
			tags = append(tags, "status="+st.Status)
		}
		if st.Rule != "" {
			tags = append(tags, "rule="+st.Rule)
		}
		if st.EventSeq != 0 {
			tags = append(tags, "event=#"+strconv.FormatInt(st.EventSeq, 10))
		}
		if st.Cause != "" {
			tags = append(tags, "cause="+oneLine(st.Cause))
		}
		if len(tags) > 0 {
			fmt.Fprintf(w, "  [%s]", strings.Join(tags, " "))
		}
		io.WriteString(w, "\n")
		for _, d := range st.Details {
			fmt.Fprintf(w, "    %s\n", oneLine(d))
		}
	}
}

// oneLine keeps a value on its line so the text stays one step per line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}
