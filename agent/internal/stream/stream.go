// Package stream holds what the JSON-lines parsers of agent CLIs share.
package stream

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Object returns line as the bytes of a JSON object, or false when the line
// cannot be one: it does not start with '{' once surrounding white space is
// trimmed, or it is not valid JSON. Agent CLIs mix such lines (warnings,
// progress, pieces of over-long lines) into their streams; they carry no
// events.
func Object(line string) ([]byte, bool) {
	s := strings.TrimSpace(line)
	if !strings.HasPrefix(s, "{") {
		return nil, false
	}
	b := []byte(s)
	if !json.Valid(b) {
		return nil, false
	}
	return b, true
}

// String returns raw as a string when it is a JSON string.
func String(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// ErrorMessage extracts the message of an error event: the "error" field
// when it is a string, else error.message, else error.data.message, else the
// top-level "message" field. It returns "" when there is none.
func ErrorMessage(obj []byte) string {
	var ev struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
	}
	if json.Unmarshal(obj, &ev) != nil {
		return ""
	}
	if s, ok := String(ev.Error); ok && strings.TrimSpace(s) != "" {
		return s
	}
	var nested, data struct {
		Message json.RawMessage `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if objectInto(ev.Error, &nested) {
		if s, ok := String(nested.Message); ok && strings.TrimSpace(s) != "" {
			return s
		}
		if objectInto(nested.Data, &data) {
			if s, ok := String(data.Message); ok && strings.TrimSpace(s) != "" {
				return s
			}
		}
	}
	if s, ok := String(ev.Message); ok && strings.TrimSpace(s) != "" {
		return s
	}
	return ""
}

// objectInto decodes raw into v when raw is a JSON object.
func objectInto(raw json.RawMessage, v any) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, v) == nil
}
