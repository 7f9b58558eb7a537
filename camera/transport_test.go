package camera

import (
	"context"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/rtsptest"
)

// TestTransport checks that each camera's configured RTSP transport is the
// one the server sees, with both offered.
func TestTransport(t *testing.T) {
	needClips(t)
	srv, err := rtsptest.Start(context.Background(), rtsptest.Options{UDP: true, Sources: []rtsptest.Source{
		{Name: "over-tcp", Clip: clips.main, Loop: true},
		{Name: "over-udp", Clip: clips.main, Loop: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tests := []struct{ transport, path, want string }{
		{"tcp", "over-tcp", "TCP"},
		{"udp", "over-udp", "UDP"},
	}
	rs := make([]*running, len(tests))
	for i, tc := range tests {
		cfg := testCamera("cam-"+tc.transport, srv.URL(tc.path))
		cfg.Transport = tc.transport
		rs[i] = run(t, cfg, Options{})
	}
	for i, tc := range tests {
		t.Run(tc.transport, func(t *testing.T) {
			waitState(t, rs[i], startBound, StateStreaming)
			if got := srv.Path(tc.path).Transport(); got != tc.want {
				t.Errorf("transport %s: server saw %q, want %q", tc.transport, got, tc.want)
			}
			before := rs[i].frames.Load()
			waitFor(t, 5*time.Second, "frames over "+tc.transport, func() bool { return rs[i].frames.Load() >= before+10 })
		})
	}
}
