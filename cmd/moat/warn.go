package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/moatdev/moat/internal/safetext"
)

// warnHandler is a slog.Handler that shows the warnings and errors of the
// packages moat uses (a sandbox provider falling back, say) as moat's own
// warnings, through emit: never as raw Go log lines between moat's status
// lines. Debug and info records are dropped.
type warnHandler struct {
	emit  func(text string)
	attrs []slog.Attr
}

// newWarnLogger returns a logger whose warnings reach emit.
func newWarnLogger(emit func(text string)) *slog.Logger {
	return slog.New(warnHandler{emit: emit})
}

// writerWarnings emits warnings to w as "moat: warning: ..." lines.
func writerWarnings(w io.Writer) func(string) {
	return func(text string) { fmt.Fprintf(w, "moat: warning: %s\n", safetext.String(text)) }
}

func (h warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h warnHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	var kv []string
	add := func(a slog.Attr) bool {
		if !a.Equal(slog.Attr{}) {
			kv = append(kv, a.Key+" "+a.Value.String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if len(kv) > 0 {
		b.WriteString(" (" + strings.Join(kv, ", ") + ")")
	}
	h.emit(b.String())
	return nil
}

func (h warnHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)
	return h
}

// WithGroup keeps the attributes flat: a warning is one line for a person.
func (h warnHandler) WithGroup(string) slog.Handler { return h }
