package camera

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/config"
)

// ProbeOptions tunes Probe.
type ProbeOptions struct {
	// Frames is how many frames to read; 0 means 50 (FFmpeg hands the
	// frames it buffered while probing the stream at once, so the rate is
	// measured only on frames that had to be waited for).
	Frames int
	// OpenTimeout and ReadTimeout bound OpenCV's calls; 0 means the camera
	// defaults.
	OpenTimeout, ReadTimeout time.Duration
	// Transport for RTSP: tcp (default) or udp.
	Transport string
	// TLS is how an rtsps source's certificate is checked.
	TLS TLSVerify
}

// ProbeResult is what Probe learned about a source.
type ProbeResult struct {
	// URL is the probed URL with credentials masked.
	URL   string
	Codec string
	// Width and Height of the decoded frames.
	Width, Height int
	// FPS is the rate the stream announces; MeasuredFPS the rate live
	// frames arrived at (0 when every frame read was already buffered).
	FPS, MeasuredFPS float64
	// OpenTime is how long the open took; FirstFrame the time from the
	// start of the open to the first decoded frame.
	OpenTime, FirstFrame time.Duration
	// Frames is the number of frames read.
	Frames int
}

// Probe opens rawURL as a worker would, reads a few frames and reports the
// stream's codec, size and rates. It returns when ctx is done even if OpenCV
// is blocked; the capture is then released by its goroutine when its call
// returns (within the timeouts). Errors carry no credentials.
func Probe(ctx context.Context, rawURL string, opts ProbeOptions) (ProbeResult, error) {
	def := config.CameraDefaults()
	if opts.Frames <= 0 {
		opts.Frames = 50
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = def.OpenTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = def.ReadTimeout
	}
	redacted := config.Redact(rawURL)
	type outcome struct {
		res ProbeResult
		err error
	}
	quit := make(chan struct{})
	done := make(chan outcome, 1)
	go func() { // ends after at most open + Frames reads, each bounded by its timeout
		res, err := probe(sourceURL(rawURL), redacted, opts, quit)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		close(quit)
		return ProbeResult{URL: redacted}, fmt.Errorf("probing %s: %w", redacted, ctx.Err())
	}
}

func probe(src, redacted string, opts ProbeOptions, quit <-chan struct{}) (ProbeResult, error) {
	res := ProbeResult{URL: redacted}
	if err := verifyRTSPS(context.Background(), src, opts.TLS, opts.OpenTimeout); err != nil {
		return res, fmt.Errorf("probing %s: %s", redacted, redactMessage(err.Error()))
	}
	select {
	case openGate <- struct{}{}:
	case <-quit:
		return res, errors.New("probe abandoned")
	}
	start := time.Now()
	c, err := openCapture(src, opts.Transport, opts.OpenTimeout, opts.ReadTimeout)
	<-openGate
	if err != nil {
		return res, fmt.Errorf("probing %s: %w", redacted, explainOpenError(src, opts.OpenTimeout, err))
	}
	defer c.close()
	res.OpenTime = time.Since(start)
	res.Codec = c.codec()
	res.FPS = c.get(gocv.VideoCaptureFPS)
	m := gocv.NewMat()
	defer m.Close()
	// live is when the first frame that had to be waited for arrived, and
	// nlive the frames since.
	var live time.Time
	nlive := 0
	// A read that waits counts as "live" (the buffered frames are used up)
	// only when it waits a good part of a frame interval: on a loaded host
	// a read of a buffered frame can take several milliseconds, and the
	// buffered frames after it would inflate the measured rate.
	blocked := 5 * time.Millisecond
	if res.FPS > 0 {
		blocked = min(max(blocked, time.Duration(0.5*float64(time.Second)/res.FPS)), 100*time.Millisecond)
	}
	for res.Frames < opts.Frames {
		select {
		case <-quit:
			return res, errors.New("probe abandoned")
		default:
		}
		t0 := time.Now()
		ok, msg := c.read(&m)
		if !ok || m.Empty() {
			if msg == "" {
				msg = "end of stream or read timeout"
			}
			if res.Frames == 0 {
				return res, fmt.Errorf("probing %s: reading the first frame: %s", redacted, msg)
			}
			break
		}
		now := time.Now()
		if res.Frames == 0 {
			res.FirstFrame = now.Sub(start)
			res.Width, res.Height = m.Cols(), m.Rows()
		}
		res.Frames++
		if live.IsZero() && now.Sub(t0) >= blocked && res.Frames > 1 {
			live = now
		} else if !live.IsZero() {
			nlive++
			res.MeasuredFPS = float64(nlive) / now.Sub(live).Seconds()
		}
	}
	return res, nil
}
