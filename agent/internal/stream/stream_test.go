package stream

import "testing"

func TestObject(t *testing.T) {
	for line, want := range map[string]bool{
		`{"type":"x"}`:          true,
		"  {\"a\":1}\r":         true,
		`{"type":`:              false,
		`[{"type":"x"}]`:        false,
		`"{}"`:                  false,
		``:                      false,
		`npm warn {"type":"x"}`: false,
		`{} trailing`:           false,
	} {
		if _, got := Object(line); got != want {
			t.Errorf("Object(%q) ok = %v, want %v", line, got, want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	for obj, want := range map[string]string{
		`{"type":"error","error":"rate limited"}`:                                 "rate limited",
		`{"type":"error","error":{"message":"401 Unauthorized"}}`:                 "401 Unauthorized",
		`{"type":"error","error":{"data":{"message":"context window exceeded"}}}`: "context window exceeded",
		`{"type":"error","message":"Reconnecting... 1/5"}`:                        "Reconnecting... 1/5",
		`{"type":"error","error":"","message":"fallback"}`:                        "fallback",
		`{"type":"error","error":{"message":42},"message":"fallback"}`:            "fallback",
		`{"type":"error","error":{"data":"text"}}`:                                "",
		`{"type":"error","error":null}`:                                           "",
		`{"type":"error"}`:                                                        "",
		`not json`:                                                                "",
	} {
		if got := ErrorMessage([]byte(obj)); got != want {
			t.Errorf("ErrorMessage(%s) = %q, want %q", obj, got, want)
		}
	}
}

func TestString(t *testing.T) {
	if s, ok := String([]byte(` "a\nb" `)); !ok || s != "a\nb" {
		t.Errorf("String = %q, %v", s, ok)
	}
	for _, raw := range []string{``, `null`, `42`, `{"a":1}`, `"unterminated`} {
		if _, ok := String([]byte(raw)); ok {
			t.Errorf("String(%s) ok", raw)
		}
	}
}
