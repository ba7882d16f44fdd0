package order

// Unexported helpers the external tests exercise directly.
var RememberKey = rememberKey

// AllowsFrom reports whether t may be issued in state s.
func AllowsFrom(t Transition, s Status) bool { return t.allowsFrom(s) }
