package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// alertTap passes what the service prints through to w and counts the
// alert lines (the console sink's "ALERT …" lines) naming identity and
// those naming anyone else.
type alertTap struct {
	w        io.Writer
	identity string
	changed  chan struct{} // a token after each counted line

	mu      sync.Mutex
	partial []byte
	n, rest int
}

func (t *alertTap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := string(t.partial[:i])
		t.partial = t.partial[i+1:]
		if !strings.HasPrefix(line, "ALERT ") {
			continue
		}
		if strings.Contains(line, fmt.Sprintf("identity=%q", t.identity)) {
			t.n++
		} else {
			t.rest++
		}
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
	return t.w.Write(p)
}

func (t *alertTap) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

func (t *alertTap) others() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rest
}
