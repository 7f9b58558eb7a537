package rtsptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// EncodeOptions describes one ffmpeg encode of a test clip.
type EncodeOptions struct {
	// Src is any file ffmpeg reads (a video, or a still image with Still).
	Src string
	// Dst receives a raw Annex-B H.264 elementary stream.
	Dst string
	// Width and Height of the output; the source is scaled (not cropped).
	Width, Height int
	// FPS of the output; frames are duplicated or dropped to reach it.
	FPS float64
	// Duration limits the output; 0 keeps the whole source.
	Duration time.Duration
	// Still repeats the source's first frame for Duration (a still scene).
	Still bool
	// GOP is the keyframe interval in frames; 0 means one per second.
	GOP int
}

// EncodeH264 encodes src into a raw H.264 stream at dst with ffmpeg
// (libx264, baseline, no B-frames, SPS/PPS before every keyframe, one access
// unit delimiter per frame), the form Server serves.
func EncodeH264(ctx context.Context, src, dst string, width, height int, fps float64) error {
	return Encode(ctx, EncodeOptions{Src: src, Dst: dst, Width: width, Height: height, FPS: fps})
}

// Encode runs ffmpeg as o describes.
func Encode(ctx context.Context, o EncodeOptions) error {
	if o.Width <= 0 || o.Height <= 0 || o.FPS <= 0 {
		return fmt.Errorf("encoding %s: size %dx%d at %g fps is not valid", o.Src, o.Width, o.Height, o.FPS)
	}
	gop := o.GOP
	if gop <= 0 {
		gop = max(1, int(o.FPS+0.5))
	}
	fps := strconv.FormatFloat(o.FPS, 'f', -1, 64)
	vf := fmt.Sprintf("scale=%d:%d,fps=%s,format=yuv420p", o.Width, o.Height, fps)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}
	if o.Still {
		vf = "select=eq(n\\,0),loop=loop=-1:size=1:start=0,setpts=N/(" + fps + "*TB)," + vf
	}
	args = append(args, "-i", o.Src, "-an", "-vf", vf)
	if o.Duration > 0 {
		args = append(args, "-t", strconv.FormatFloat(o.Duration.Seconds(), 'f', 3, 64))
	} else if o.Still {
		return fmt.Errorf("encoding %s: a still clip needs a duration", o.Src)
	}
	args = append(args,
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
		"-profile:v", "baseline", "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop),
		"-sc_threshold", "0", "-bf", "0",
		"-x264-params", "repeat-headers=1:aud=1",
		"-f", "h264", o.Dst)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return fmt.Errorf("encoding %s with ffmpeg: %w: %s", o.Src, err, msg)
	}
	return nil
}

// Clip is an H.264 stream split into access units, ready to serve.
type Clip struct {
	// AUs holds one access unit per frame, each a list of NAL units without
	// start codes (access unit delimiters removed).
	AUs [][][]byte
	// FPS is the clip's frame rate, the pace at which it is served.
	FPS float64
	// Width and Height come from the first SPS.
	Width, Height int
	// SPS and PPS are the first parameter sets, announced in the SDP.
	SPS, PPS []byte
}

// Duration is the clip's length at its frame rate.
func (c *Clip) Duration() time.Duration {
	return time.Duration(float64(len(c.AUs)) / c.FPS * float64(time.Second))
}

// LoadClip reads a raw H.264 stream written by Encode and splits it into
// access units. fps is the rate it was encoded at.
func LoadClip(path string, fps float64) (*Clip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading clip: %w", err)
	}
	c, err := ParseClip(data, fps)
	if err != nil {
		return nil, fmt.Errorf("loading clip %s: %w", path, err)
	}
	return c, nil
}

// ParseClip splits an Annex-B H.264 stream into access units: a new unit
// starts at each access unit delimiter or, without delimiters, at each slice
// whose first_mb_in_slice is 0.
func ParseClip(data []byte, fps float64) (*Clip, error) {
	if fps <= 0 {
		return nil, fmt.Errorf("frame rate %g is not positive", fps)
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("parsing annex-b: %w", err)
	}
	c := &Clip{FPS: fps}
	var cur [][]byte
	var curHasSlice bool
	flush := func() {
		if curHasSlice {
			c.AUs = append(c.AUs, cur)
		}
		cur, curHasSlice = nil, false
	}
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		typ := h264.NALUType(n[0] & 0x1f)
		switch {
		case typ == h264.NALUTypeAccessUnitDelimiter:
			flush()
			continue
		case typ == h264.NALUTypeSPS:
			if c.SPS == nil {
				c.SPS = n
			}
			if curHasSlice {
				flush()
			}
		case typ == h264.NALUTypePPS:
			if c.PPS == nil {
				c.PPS = n
			}
		case typ == h264.NALUTypeIDR || typ == h264.NALUTypeNonIDR:
			// first_mb_in_slice is ue(v) and 0 encodes as a single 1 bit.
			if curHasSlice && len(n) > 1 && n[1]&0x80 != 0 {
				flush()
			}
			curHasSlice = true
		}
		cur = append(cur, n)
	}
	flush()
	if len(c.AUs) == 0 {
		return nil, errors.New("no frames in stream")
	}
	if c.SPS == nil || c.PPS == nil {
		return nil, errors.New("stream has no SPS/PPS")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.SPS); err != nil {
		return nil, fmt.Errorf("parsing SPS: %w", err)
	}
	c.Width, c.Height = sps.Width(), sps.Height()
	return c, nil
}

// isIDR reports whether an access unit starts a decodable picture.
func isIDR(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeIDR {
			return true
		}
	}
	return false
}
