package pipeline

import (
	"testing"
	"time"
)

// TestCropCacheForgets: a held crop is gone after its time or when newer
// crops need the room, and its bytes are cleared when it goes.
func TestCropCacheForgets(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	crop := func(b byte, n int) []byte {
		c := make([]byte, n)
		for i := range c {
			c[i] = b
		}
		return c
	}
	c := newCropCache(time.Minute, 100, clock)
	a := crop('a', 40)
	c.put(cropKey{"cam", 1, false, 0}, a)
	c.put(cropKey{"cam", 1, true, 0}, a) // the same face in the final report
	c.put(cropKey{"cam", 2, false, 0}, crop('b', 10))
	tests := []struct {
		name    string
		advance time.Duration
		put     *cropKey
		size    int
		want    map[cropKey]bool
	}{
		{"all held", 0, nil, 0, map[cropKey]bool{{"cam", 1, false, 0}: true, {"cam", 1, true, 0}: true, {"cam", 2, false, 0}: true}},
		// 90 bytes held; 30 more push out the oldest.
		{"room for a newer crop", 10 * time.Second, &cropKey{"cam", 3, false, 0}, 30, map[cropKey]bool{{"cam", 1, false, 0}: false, {"cam", 1, true, 0}: true, {"cam", 3, false, 0}: true}},
		{"past its time", 55 * time.Second, nil, 0, map[cropKey]bool{{"cam", 1, true, 0}: false, {"cam", 2, false, 0}: false, {"cam", 3, false, 0}: true}},
		{"everything past its time", time.Minute, nil, 0, map[cropKey]bool{{"cam", 3, false, 0}: false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.advance)
			if tc.put != nil {
				c.put(*tc.put, crop('c', tc.size))
			}
			for k, want := range tc.want {
				if got := c.get(k) != nil; got != want {
					t.Errorf("get(%v) held = %v, want %v", k, got, want)
				}
			}
		})
	}
	if n := c.expire(); n != 0 {
		t.Errorf("crops left = %d, want 0", n)
	}
	// The caller's slice is not the cache's: clearing an entry leaves it.
	if a[0] != 'a' {
		t.Errorf("caller's crop changed to %q, want it untouched", a[:1])
	}
}
