package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/internal/wire"
)

// Crops of track reports stay in the detect stage's memory: a track
// report carries descriptors only, and the matcher asks for the best
// face's crop (wire.CropsSubject) only when the track matched someone. So
// the face image of a person on no list never leaves the detect process,
// and never reaches a disk (docs/privacy.md). The same holds for the scene
// of that face (the frame downscaled, see sceneShot): held beside the
// crop, its face box drawn and sent only in the answer for a hit.

// cropKey names the crop of one track report.
type cropKey struct {
	camera string
	track  uint64
	final  bool
	report int
}

// cropEntry is one held crop; entries form a list in insertion order.
type cropEntry struct {
	key  cropKey
	crop []byte
	// scene is the downscaled frame (JPEG, no box yet), sceneBox the
	// face's box in its pixels and sceneOthers the boxes of the other
	// faces in the frame (blurred when the scene is handed out); nil when
	// there is none.
	scene       []byte
	sceneBox    image.Rectangle
	sceneOthers []image.Rectangle
	added       time.Time
	prev, next  *cropEntry
}

// cropCache holds crops for a bounded time and size; the oldest go first.
type cropCache struct {
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu sync.Mutex
	// The fields below are guarded by mu.
	byKey      map[cropKey]*cropEntry
	head, tail *cropEntry // oldest, newest
	bytes      int
}

// defaultCropBytes bounds the crops one detect process holds.
const defaultCropBytes = 32 << 20

func newCropCache(ttl time.Duration, maxBytes int, now func() time.Time) *cropCache {
	return &cropCache{ttl: ttl, maxBytes: maxBytes, now: now, byKey: map[cropKey]*cropEntry{}}
}

// put holds crop under k (replacing an earlier one).
func (c *cropCache) put(k cropKey, crop []byte) { c.putScene(k, crop, nil, image.Rectangle{}, nil) }

// putScene holds crop and the scene of its face (box, and the other faces'
// boxes, in the scene's pixels) under k, replacing an earlier one.
func (c *cropCache) putScene(k cropKey, crop, scene []byte, box image.Rectangle, others []image.Rectangle) {
	if len(crop) == 0 || len(crop)+len(scene) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byKey[k]; e != nil {
		c.removeLocked(e)
	}
	// A copy: the tracker may hand the same face to an early and a final
	// report, and removing one entry clears its bytes.
	e := &cropEntry{key: k, crop: append([]byte(nil), crop...), added: c.now(), prev: c.tail, sceneBox: box, sceneOthers: others}
	if len(scene) > 0 {
		e.scene = append([]byte(nil), scene...)
	}
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
	c.byKey[k] = e
	c.bytes += len(e.crop) + len(e.scene)
	c.expireLocked()
}

// get returns a copy of the crop held under k, or nil.
func (c *cropCache) get(k cropKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	if e := c.byKey[k]; e != nil {
		return append([]byte(nil), e.crop...)
	}
	return nil
}

// getScene returns a copy of the scene held under k, the face's box in it
// and the other faces' boxes, or nil.
func (c *cropCache) getScene(k cropKey) ([]byte, image.Rectangle, []image.Rectangle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	if e := c.byKey[k]; e != nil && len(e.scene) > 0 {
		return append([]byte(nil), e.scene...), e.sceneBox, e.sceneOthers
	}
	return nil, image.Rectangle{}, nil
}

// expire drops what is past its time; it returns how many crops are left.
func (c *cropCache) expire() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
	return len(c.byKey)
}

func (c *cropCache) expireLocked() {
	cutoff := c.now().Add(-c.ttl)
	for c.head != nil && (c.bytes > c.maxBytes || !c.head.added.After(cutoff)) {
		c.removeLocked(c.head)
	}
}

func (c *cropCache) removeLocked(e *cropEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	clear(e.crop) // do not leave the face in freed memory longer than needed
	clear(e.scene)
	delete(c.byKey, e.key)
	c.bytes -= len(e.crop) + len(e.scene)
}

// serveCrops answers crop requests for the cameras in subjects until ctx
// ends, and drops expired crops as it goes. Only the process holding a
// crop answers (several detect processes may share the subjects); one
// that holds none stays silent.
func (s *DetectStage) serveCrops(ctx context.Context, subjects []string) error {
	nc := s.opt.Bus.Conn
	handle := func(m *nats.Msg) {
		req, err := wire.DecodeCropRequest(m.Data)
		if err != nil || m.Reply == "" || m.Subject != wire.CropsSubject(req.Camera) {
			return // not worth a dead letter: a request carries no data
		}
		k := cropKey{req.Camera, req.Track, req.Final, req.Report}
		crop := s.crops.get(k)
		if crop == nil {
			return
		}
		// Asked for: the track matched someone. Only now is its face box
		// drawn on the scene and every other face in it blurred; it leaves
		// the process with the crop.
		scene := drawSceneBox(s.crops.getScene(k))
		if len(crop)+len(scene) > wire.MaxCrop {
			scene = nil
		}
		data, err := wire.EncodeCropSceneReply(req, crop, scene)
		if err != nil {
			return
		}
		if err := m.Respond(data); err != nil {
			s.log.Warn("answering crop request", "camera", req.Camera, "track", req.Track, "err", err)
		}
	}
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
	}()
	for _, subj := range subjects {
		sub, err := nc.Subscribe(subj, handle)
		if err != nil {
			return fmt.Errorf("subscribing to %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	t := time.NewTicker(max(time.Second, s.crops.ttl/10))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.crops.expire()
		}
	}
}

// cropTimeout bounds how long a matcher waits for a hit's crop.
const cropTimeout = time.Second

// fetchCrop asks the detect stage for the crop of the track report t and
// the scene of its face; nil when no detect process holds it any more (the
// hit goes on without one). A detect process built before scenes answers
// with the crop alone.
func fetchCrop(ctx context.Context, nc *nats.Conn, t wire.Track) (crop, scene []byte, err error) {
	req := wire.CropRequest{Camera: t.Meta.Camera, Track: t.Meta.Track, Final: t.Meta.Final, Report: t.Meta.Report}
	data, err := wire.EncodeCropRequest(req)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cropTimeout)
	defer cancel()
	rep, err := nc.RequestWithContext(ctx, wire.CropsSubject(req.Camera), data)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("asking for the crop of %s: %w", t.MsgID(), err)
	}
	return wire.DecodeCropSceneReply(rep.Data, req)
}

// sceneShot is one frame downscaled for the reviewer (at most
// wire.SceneMaxWidth wide) as a JPEG without any box, shared by the faces
// found in it; scale is scene pixels per frame pixel, faces the boxes of
// every face found in the frame (frame pixels).
type sceneShot struct {
	jpeg  []byte
	scale float64
	faces []image.Rectangle
}

// sceneQuality is the JPEG quality of scenes: context, not evidence of a
// face (the crop is that).
const sceneQuality = 70

// makeScene downscales frame m and encodes it; nil when it cannot.
func makeScene(m gocv.Mat) *sceneShot {
	w, h := m.Cols(), m.Rows()
	if w <= 0 || h <= 0 {
		return nil
	}
	src, scale := m, 1.0
	if w > wire.SceneMaxWidth {
		scale = float64(wire.SceneMaxWidth) / float64(w)
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(m, &small, image.Pt(wire.SceneMaxWidth, max(1, int(float64(h)*scale+0.5))), 0, 0, gocv.InterpolationArea)
		src = small
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, sceneQuality})
	if err != nil {
		return nil
	}
	defer buf.Close()
	return &sceneShot{jpeg: append([]byte(nil), buf.GetBytes()...), scale: scale}
}

// box scales a frame box to the scene's pixels.
func (sc *sceneShot) box(r image.Rectangle) image.Rectangle {
	f := func(v int) int { return int(float64(v)*sc.scale + 0.5) }
	return image.Rect(f(r.Min.X), f(r.Min.Y), f(r.Max.X), f(r.Max.Y))
}

// others returns the scene boxes of the frame's faces other than face.
func (sc *sceneShot) others(face image.Rectangle) []image.Rectangle {
	var out []image.Rectangle
	for _, r := range sc.faces {
		if r != face {
			out = append(out, sc.box(r))
		}
	}
	return out
}

// sceneBoxColor is the face box drawn on a scene: green.
var sceneBoxColor = color.RGBA{R: 0, G: 255, B: 0, A: 255}

// drawSceneBox blurs the other faces of the scene JPEG (a bystander is
// context, not someone to recognise), draws box around the matched one
// and encodes it again; nil when there is no scene or it cannot be decoded.
func drawSceneBox(scene []byte, box image.Rectangle, others []image.Rectangle) []byte {
	if len(scene) == 0 {
		return nil
	}
	m, err := gocv.IMDecode(scene, gocv.IMReadColor)
	if err != nil || m.Empty() {
		m.Close()
		return nil
	}
	defer m.Close()
	bounds := image.Rect(0, 0, m.Cols(), m.Rows())
	for _, r := range others {
		// Widened like a crop, so that hair and chin go too.
		r = r.Inset(-r.Dx() / 5).Intersect(bounds)
		if r.Dx() < 2 || r.Dy() < 2 {
			continue
		}
		roi := m.Region(r)
		k := max(3, r.Dx()/2) | 1
		gocv.Blur(roi, &roi, image.Pt(k, k))
		gocv.Blur(roi, &roi, image.Pt(k, k))
		roi.Close()
	}
	gocv.Rectangle(&m, box, sceneBoxColor, max(3, m.Cols()/160))
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 80})
	if err != nil {
		return nil
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}
