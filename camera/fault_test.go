package camera

import (
	"strings"
	"testing"
	"time"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/rtsptest"
)

// recoveryBound is how long a worker may take to stream again once its
// source is healthy: an open already in flight may still fail
// (open_timeout), then the longest backoff, then a fresh open, which takes
// FFmpeg under a second at 50 fps, but may queue behind the opens of the
// other tests running in parallel (OpenCV serialises opens): 5 s allowed.
func recoveryBound(r *running) time.Duration {
	return r.w.cfg.OpenTimeout + r.w.cfg.BackoffMax + 5*time.Second
}

// TestFaults injects each camera fault with the RTSP test server into one
// camera while a neighbour camera streams from the same server, and checks
// the state reached, the recovery, the neighbour's frame rate and the
// release of every capture goroutine.
func TestFaults(t *testing.T) {
	needClips(t)
	tests := []struct {
		name string
		// refuseFirst refuses before the worker starts.
		refuseFirst bool
		inject      func(p *rtsptest.Path)
		// during are the states the victim must reach under the fault.
		during []State
		// check runs while the fault holds.
		check func(t *testing.T, r *running)
		heal  func(p *rtsptest.Path)
		// after runs once the victim streams again.
		after func(t *testing.T, r *running)
		// tune adjusts the victim's config.
		tune func(c *config.Camera)
	}{
		{
			name:        "refuse at start",
			refuseFirst: true,
			during:      []State{StateFailed},
			check: func(t *testing.T, r *running) {
				if st := r.w.Status(); !contains(st.LastError, "503") {
					t.Errorf("Status().LastError = %q, want the server's 503", st.LastError)
				}
			},
			heal: func(p *rtsptest.Path) { p.Refuse(false) },
		},
		{
			name:   "stall with connection open",
			inject: func(p *rtsptest.Path) { p.Stall(true) },
			during: []State{StateStalled},
			check: func(t *testing.T, r *running) {
				st := r.w.Status()
				if st.Stalls == 0 || !contains(st.LastError, ErrStalled.Error()) {
					t.Errorf("Status() = stalls %d, last error %q, want ≥ 1 stall and %q", st.Stalls, st.LastError, ErrStalled)
				}
			},
			heal: func(p *rtsptest.Path) { p.Stall(false) },
		},
		{
			// OpenCV's read timeout ends the read before the watchdog.
			name:   "stall caught by the read timeout",
			tune:   func(c *config.Camera) { c.ReadTimeout, c.StallTimeout = time.Second, 5*time.Second },
			inject: func(p *rtsptest.Path) { p.Stall(true) },
			during: []State{StateStalled},
			check: func(t *testing.T, r *running) {
				if st := r.w.Status(); st.Stalls == 0 || !contains(st.LastError, "read timeout") {
					t.Errorf("Status() = stalls %d, last error %q, want ≥ 1 stall from the read timeout", st.Stalls, st.LastError)
				}
			},
			heal: func(p *rtsptest.Path) { p.Stall(false) },
		},
		{
			name:   "drop and come back",
			inject: func(p *rtsptest.Path) { p.Drop(1500 * time.Millisecond) },
			during: []State{StateBackingOff, StateConnecting, StateFailed},
			heal:   func(p *rtsptest.Path) {},
			after: func(t *testing.T, r *running) {
				if st := r.w.Status(); st.Reconnects == 0 {
					t.Errorf("Status().Reconnects = 0 after a drop, want ≥ 1")
				}
			},
		},
		{
			name:   "garbage NAL units",
			inject: func(p *rtsptest.Path) { p.Garbage(20) },
			during: []State{StateStreaming},
			heal:   func(p *rtsptest.Path) {},
			after: func(t *testing.T, r *running) {
				// OpenCV's read may give up on a run of undecodable
				// frames, and a reconnect may land in the rest of the
				// garbage (0.4 s at 50 fps): a few reconnects at most,
				// never a dead worker (the recovery above).
				if st := r.w.Status(); st.Reconnects > 3 {
					t.Errorf("Status().Reconnects = %d after 20 garbage frames, want ≤ 3", st.Reconnects)
				}
			},
		},
		{
			name:   "resolution change",
			inject: func(p *rtsptest.Path) { p.SwitchClip() },
			during: []State{StateStreaming},
			// OpenCV 4.6 keeps scaling frames to the size the stream was
			// opened with (its FFmpeg backend reads the stream's size once),
			// so the worker must carry on at the old size, and a reconnect
			// (here forced by a drop) delivers the new one.
			check: func(t *testing.T, r *running) {
				before := r.frames.Load()
				time.Sleep(1500 * time.Millisecond)
				if st := r.w.Status(); st.State != StateStreaming || st.Reconnects != 0 || r.frames.Load() < before+10 {
					t.Errorf("Status() after a resolution change = %s, %d reconnects, %d new frames; want streaming, 0, ≥ 10",
						st.State, st.Reconnects, r.frames.Load()-before)
				}
			},
			heal: func(p *rtsptest.Path) { p.Drop(0) },
			after: func(t *testing.T, r *running) {
				waitFor(t, recoveryBound(r), "frames at the new resolution", func() bool {
					r.mu.Lock()
					defer r.mu.Unlock()
					return r.sizes[[2]int{altW, altH}] > 0
				})
				if st := r.w.Status(); st.Width != altW || st.Height != altH {
					t.Errorf("Status() size = %dx%d, want %dx%d", st.Width, st.Height, altW, altH)
				}
			},
		},
		{
			name:   "fewer fps than announced",
			inject: func(p *rtsptest.Path) { p.SetRate(5) },
			during: []State{StateStreaming},
			check: func(t *testing.T, r *running) {
				waitFor(t, 8*time.Second, "fps in falling to about 5", func() bool {
					f := r.w.Status().FPSIn
					return f > 2 && f < 8
				})
				if st := r.w.Status(); st.State != StateStreaming || st.Stalls != 0 {
					t.Errorf("Status() = %s with %d stalls at 5 fps, want streaming, 0 stalls", st.State, st.Stalls)
				}
			},
			heal: func(p *rtsptest.Path) { p.SetRate(0) },
			after: func(t *testing.T, r *running) {
				waitFor(t, 8*time.Second, "fps in back to the clip's", func() bool {
					return r.w.Status().FPSIn > clipFPS*0.7
				})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startRig(t,
				rtsptest.Source{Name: "victim", Clip: clips.main, Alt: clips.alt, Loop: true},
				rtsptest.Source{Name: "neighbour", Clip: clips.main, Loop: true})
			victimPath := srv.Path("victim")
			if tc.refuseFirst {
				victimPath.Refuse(true)
			}
			vcfg := testCamera("victim", srv.URL("victim"))
			if tc.tune != nil {
				tc.tune(&vcfg)
			}
			victim := run(t, vcfg, Options{})
			nb := run(t, testCamera("neighbour", srv.URL("neighbour")), Options{})
			waitState(t, nb, startBound, StateStreaming)
			if !tc.refuseFirst {
				waitState(t, victim, startBound, StateStreaming)
			}
			nbFrames0, t0 := nb.w.Status().FramesIn, time.Now()

			if tc.inject != nil {
				tc.inject(victimPath)
			}
			waitState(t, victim, 10*time.Second, tc.during...)
			if tc.check != nil {
				tc.check(t, victim)
			}
			time.Sleep(500 * time.Millisecond) // let the fault hold a while
			before := victim.frames.Load()
			tc.heal(victimPath)
			rec := waitFor(t, recoveryBound(victim), "victim streaming again", func() bool {
				return victim.w.Status().State == StateStreaming && victim.frames.Load() > before+5
			})
			t.Logf("recovered in %v (bound %v)", rec, recoveryBound(victim))
			if tc.after != nil {
				tc.after(t, victim)
			}

			// The neighbour kept its rate through the fault.
			elapsed := time.Since(t0).Seconds()
			got := float64(nb.w.Status().FramesIn-nbFrames0) / elapsed
			if got < 0.7*clipFPS {
				t.Errorf("neighbour fps during %q = %.1f, want ≥ %.1f (70%% of %g)", tc.name, got, 0.7*clipFPS, clipFPS)
			}
			if st := nb.w.Status(); st.Reconnects != 0 || st.State != StateStreaming {
				t.Errorf("neighbour Status() = %s, %d reconnects, want streaming, 0", st.State, st.Reconnects)
			}
			// No leak: stop checks Run returns within 2 s and every capture
			// goroutine exits (TestMain checks goroutines at the end).
			victim.stop(t)
			nb.stop(t)
			if n := victim.w.Status().Captures; n != 0 {
				t.Errorf("victim captures alive after Drained = %d, want 0", n)
			}
		})
	}
}

// TestShutdownDuringStall stops a worker whose read is blocked inside
// OpenCV on a stalled stream (stall and read timeouts longer than the test)
// and checks that Run returns within 2 s anyway, abandoning the capture,
// which is released once OpenCV's read timeout ends it.
func TestShutdownDuringStall(t *testing.T) {
	t.Parallel()
	srv := startRig(t, rtsptest.Source{Name: "cam", Clip: clips.main, Loop: true})
	cfg := testCamera("stall", srv.URL("cam"))
	cfg.StallTimeout = 20 * time.Second
	cfg.ReadTimeout = 4 * time.Second
	r := run(t, cfg, Options{})
	waitState(t, r, startBound, StateStreaming)
	srv.Path("cam").Stall(true)
	time.Sleep(1500 * time.Millisecond) // the queue drains; the read blocks
	if st := r.w.Status(); st.State != StateStreaming || st.Captures != 1 {
		t.Fatalf("Status() before stop = %s with %d captures, want streaming with 1 (blocked)", st.State, st.Captures)
	}
	start := time.Now()
	r.cancel()
	<-r.done
	took := time.Since(start)
	blocked := r.w.Status().Captures
	if took > 2*time.Second {
		t.Errorf("Run returned %v after cancel during a stall, want ≤ 2s", took)
	}
	if blocked != 1 {
		t.Errorf("captures alive when Run returned = %d, want 1 (the read blocked in OpenCV)", blocked)
	}
	select {
	case <-r.w.Drained():
	case <-time.After(cfg.ReadTimeout + 2*time.Second):
		t.Fatalf("abandoned capture not released within read_timeout %v + 2s", cfg.ReadTimeout)
	}
	if st := r.w.Status(); st.State != StateStopped {
		t.Errorf("Status().State after Run = %s, want %s", st.State, StateStopped)
	}
	t.Logf("Run returned in %v with the read blocked", took)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
