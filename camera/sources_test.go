package camera

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// mjpegServer serves frames as an HTTP MJPEG stream (multipart/x-mixed-
// replace, as IP cameras do) at fps, looping.
func mjpegServer(t *testing.T, frames []gocv.Mat, fps float64) *httptest.Server {
	t.Helper()
	var jpegs [][]byte
	for _, m := range frames {
		buf, err := gocv.IMEncode(gocv.JPEGFileExt, m)
		if err != nil {
			t.Fatal(err)
		}
		jpegs = append(jpegs, append([]byte(nil), buf.GetBytes()...))
		buf.Close()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
		tick := time.NewTicker(time.Duration(float64(time.Second) / fps))
		defer tick.Stop()
		for i := 0; ; i++ {
			j := jpegs[i%len(jpegs)]
			if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(j)); err != nil {
				return
			}
			if _, err := w.Write(append(j, '\r', '\n')); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// TestOtherSources runs a worker on an HTTP MJPEG stream and on a file: both
// stream at the source's own pace, and a file is reopened at its end.
func TestOtherSources(t *testing.T) {
	needClips(t)
	frames := decodeFrames(t, clips.mainPath, 20)
	web := mjpegServer(t, frames, 10)
	tests := []struct {
		name, url      string
		minFPS, maxFPS float64
		w, h           int
		reopens        bool
	}{
		{"http mjpeg", web.URL + "/video.mjpg", 7, 13, clipW, clipH, false},
		{"file paced at its rate", "file://" + clips.walkingPath, 18, 32, clipW, 180, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, testCamera("src", tc.url), Options{})
			waitState(t, r, startBound, StateStreaming)
			time.Sleep(rateWindow + time.Second)
			st := r.w.Status()
			if st.FPSIn < tc.minFPS || st.FPSIn > tc.maxFPS {
				t.Errorf("Status(%s).FPSIn = %.1f, want %g..%g (the source's pace)", tc.name, st.FPSIn, tc.minFPS, tc.maxFPS)
			}
			if st.Width != tc.w || st.Height != tc.h {
				t.Errorf("Status(%s) size = %dx%d, want %dx%d", tc.name, st.Width, st.Height, tc.w, tc.h)
			}
			if tc.reopens {
				// The 4.2 s clip has ended at least once by now.
				waitFor(t, 5*time.Second, "file reopened at its end", func() bool {
					st := r.w.Status()
					return st.Reconnects >= 1 && st.State == StateStreaming
				})
			}
		})
	}
}
