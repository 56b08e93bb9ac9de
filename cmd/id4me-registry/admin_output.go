package main

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/id4me/id4me-registry/internal/cmdline"
)

// table prints the admin commands' listings: aligned columns for people, or with --json one
// JSON object a line, the API's message as it came.
type table struct {
	json bool
	w    io.Writer
	tw   *tabwriter.Writer
}

// newTable starts a table with header's columns (none for --json, or if header is empty).
func newTable(w io.Writer, json bool, header ...string) *table {
	t := &table{json: json, w: w}
	if !json {
		t.tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if len(header) > 0 {
			fmt.Fprintln(t.tw, strings.Join(header, "\t"))
		}
	}
	return t
}

// row prints m: as cells, or as JSON.
func (t *table) row(m proto.Message, cells ...string) {
	if t.json {
		cmdline.PrintJSONLine(t.w, m)
		return
	}
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error {
	if t.tw == nil {
		return nil
	}
	return t.tw.Flush()
}

// field is one line of a detail view: a name and its value.
type field struct{ name, value string }

// printDetail prints one object: a field a line for people, or its JSON.
func printDetail(w io.Writer, json bool, m proto.Message, fields ...field) error {
	if json {
		cmdline.PrintJSONLine(w, m)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s\t%s\n", f.name, cmp.Or(f.value, "-"))
	}
	return tw.Flush()
}

// printCreated prints what a create command made: under --json its message; else note on
// stderr and value (an id or a secret, what a script takes) alone on stdout.
func printCreated(stdout, stderr io.Writer, json bool, m proto.Message, note, value string) {
	if json {
		cmdline.PrintJSONLine(stdout, m)
		return
	}
	fmt.Fprintln(stderr, note)
	fmt.Fprintln(stdout, value)
}

// printChanged prints the object a command changed: under --json its message; else line.
func printChanged(w io.Writer, json bool, m proto.Message, line string) {
	if json {
		cmdline.PrintJSONLine(w, m)
		return
	}
	fmt.Fprintln(w, line)
}

// formatTimestamp is t in RFC 3339, UTC; empty for none.
func formatTimestamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// revokedState is a credential's state for people: active, or revoked and since when.
func revokedState(revoked *timestamppb.Timestamp) string {
	if revoked == nil {
		return "active"
	}
	return "revoked " + formatTimestamp(revoked)
}

// enumName drops the prefix of an enum value's name: IDENTIFIER_STATUS_SERVER_HOLD is
// SERVER_HOLD, STATE_ACTIVE is ACTIVE.
func enumName(s string) string {
	for _, p := range []string{"IDENTIFIER_STATUS_", "STATUS_", "STATE_", "PURPOSE_"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest
		}
	}
	return s
}
