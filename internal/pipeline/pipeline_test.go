package pipeline

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/camera"
	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/embed"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/face"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/internal/wire"
	"github.com/facewatch/facewatch/match"
)

// photos returns the sorted photos of one dlib_johns identity.
func photos(t *testing.T, who string) []string {
	t.Helper()
	ps, err := filepath.Glob(filepath.Join(testdata.Path(t, "dlib_johns/"+who), "*.jpg"))
	if err != nil || len(ps) < 4 {
		t.Fatalf("photos of %s: %d, %v", who, len(ps), err)
	}
	sort.Strings(ps)
	return ps
}

// describer computes real descriptors of photos with the real models.
type describer struct {
	det *detect.Detector
	emb *embed.Embedder
}

func newDescriber(t *testing.T) *describer {
	t.Helper()
	cfg := config.Defaults()
	det, err := detect.New(testdata.ModelDir(t), cfg.Detect)
	if err != nil {
		t.Fatal(err)
	}
	emb, err := embed.New(testdata.ModelDir(t), cfg.Embed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close(); emb.Close() })
	return &describer{det, emb}
}

func (d *describer) describe(t *testing.T, path string) (embed.Descriptor, float64) {
	t.Helper()
	m, err := detect.DecodeFile(path, 1<<26)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fs, err := d.det.Detect(context.Background(), m)
	if err != nil || len(fs) != 1 {
		t.Fatalf("%s: %d faces, %v; want one", path, len(fs), err)
	}
	ds, err := d.emb.Embed(context.Background(), []face.Chip{fs[0].Chip})
	if err != nil {
		t.Fatal(err)
	}
	return ds[0], fs[0].Quality.Score
}

func openBus(t *testing.T) *natsbus.Bus {
	t.Helper()
	b, err := natsbus.Open(context.Background(), config.NATS{}, t.TempDir(), natsbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// runStage runs fn in the background and returns a function that stops it
// and reports what it returned; it fails the test if fn returns early.
func runStage(t *testing.T, fn func(context.Context) error) (context.Context, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	return ctx, func() error {
		select {
		case err := <-done:
			cancel()
			return errors.Join(errors.New("stage returned before it was stopped"), err)
		default:
		}
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("stage did not stop within 10s")
		}
	}
}

func trackOf(t *testing.T, camera string, id uint64, final bool, ds []embed.Descriptor, q []float64) wire.Track {
	t.Helper()
	now := time.Now().UTC()
	tr := wire.Track{Meta: wire.TrackMeta{Camera: camera, Track: id, Start: now.Add(-time.Second), End: now, Final: final, Seen: len(ds),
		Model: wire.Model{Name: ds[0].Model.Name, SHA256: ds[0].Model.SHA256}}}
	for i, d := range ds {
		tr.Meta.Faces = append(tr.Meta.Faces, wire.TrackFace{Seq: uint64(i), Time: now.Add(time.Duration(i-len(ds)) * 200 * time.Millisecond), Box: wire.Box{X: 10, Y: 10, W: 100, H: 100}, Quality: q[i]})
		tr.Vectors = append(tr.Vectors, d.Vector)
	}
	return tr
}

// TestMatchStage runs the match stage over real NATS with a real gallery:
// malformed tracks are dead-lettered (and the stage goes on), the enrolled
// person's track gives one hit however often it is reported, a stranger's
// gives none.
func TestMatchStage(t *testing.T) {
	ctx := context.Background()
	d := newDescriber(t)
	salley, savage := photos(t, "John_Salley"), photos(t, "John_Savage")
	enrolled, _ := d.describe(t, salley[0])

	dataDir := t.TempDir()
	g, err := match.OpenGallery(ctx, dataDir, match.GalleryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.CreateWatchlist(ctx, match.WatchlistSpec{Name: "missing", Kind: match.KindMissing, Owner: "t", LegalBasis: "test"}); err != nil {
		t.Fatal(err)
	}
	id, _, err := g.EnsureIdentity(ctx, "missing", match.IdentitySpec{Name: "John Salley"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.AddEnrolment(ctx, match.NewEnrolment{IdentityID: id.ID, Photo: []byte("photo-bytes"), PhotoExt: ".jpg", ChipPNG: chipPNG(t),
		Vector: enrolled.Vector, Model: match.ModelID(enrolled.Model), Quality: 0.9, EnrolledBy: "t"}); err != nil {
		t.Fatal(err)
	}

	bus := openBus(t)
	idx := match.NewIndex(config.Defaults().Match, match.IndexOptions{Gallery: g, JetStream: bus.JS})
	_, stopIdx := runStage(t, idx.Run)
	defer stopIdx()
	var mu sync.Mutex
	var hits []wire.Hit
	ms, err := NewMatchStage(MatchOptions{Bus: bus, Decider: idx, Ready: idx.Ready(), Photos: g, AckWait: 2 * time.Second,
		OnHit: func(h wire.Hit, dup bool) {
			mu.Lock()
			hits = append(hits, h)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := bus.Conn.SubscribeSync(wire.DeadLetterSubject(StageMatch))
	if err != nil {
		t.Fatal(err)
	}
	// The crops of cam1's tracks are held as the detect stage holds them
	// (its crop cache and responder, without its networks); every request
	// is recorded, to show that no crop of a stranger's track is asked for.
	cropReqs, err := bus.Conn.SubscribeSync(wire.CropsWildcard)
	if err != nil {
		t.Fatal(err)
	}
	holder := &DetectStage{opt: DetectOptions{Bus: bus}, log: orDiscard(nil), crops: newCropCache(time.Minute, defaultCropBytes, time.Now)}
	probeCrop := []byte{0xff, 0xd8, 0xff, 0xe0, 'p', 'r', 'o', 'b', 'e'}
	// The matched track's crops come with their scene (a 96x64 frame, the
	// face at 20,10 30x40), as the detect stage holds them.
	sceneBox := wire.Box{X: 20, Y: 10, W: 30, H: 40}
	holder.crops.putScene(cropKey{"cam1", 10, false, 0}, probeCrop, grayJPEG(t, 96, 64), image.Rect(20, 10, 50, 50), nil)
	holder.crops.putScene(cropKey{"cam1", 10, true, 0}, probeCrop, grayJPEG(t, 96, 64), image.Rect(20, 10, 50, 50), nil)
	holder.crops.put(cropKey{"cam1", 11, true, 0}, []byte{0xff, 0xd8, 0xff, 0xe0, 's'})
	_, stopHolder := runStage(t, func(ctx context.Context) error { return holder.serveCrops(ctx, []string{wire.CropsWildcard}) })
	defer stopHolder()
	_, stop := runStage(t, ms.Run)

	var aDescs, sDescs []embed.Descriptor
	var aQ, sQ []float64
	for _, p := range salley[1:4] {
		de, q := d.describe(t, p)
		aDescs, aQ = append(aDescs, de), append(aQ, q)
	}
	for _, p := range savage[:3] {
		de, q := d.describe(t, p)
		sDescs, sQ = append(sDescs, de), append(sQ, q)
	}
	wrongModel := append([]embed.Descriptor(nil), aDescs...)
	for i := range wrongModel {
		wrongModel[i].Model.SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
	}
	encode := func(tr wire.Track) []byte {
		b, err := wire.EncodeTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub := func(subject string, data []byte, id string) {
		t.Helper()
		if _, err := bus.JS.Publish(ctx, subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	// Malformed first: they must not stop what follows.
	pub(wire.TracksSubject("cam1"), []byte("not a track"), "bad-1")
	pub(wire.TracksSubject("cam1"), encode(trackOf(t, "cam2", 1, true, aDescs, aQ)), "bad-2")
	pub(wire.TracksSubject("cam1"), encode(trackOf(t, "cam1", 2, true, wrongModel, aQ)), "bad-3")

	a := trackOf(t, "cam1", 10, false, aDescs, aQ)
	// A's track continues the appearance of track 8 of tracker 5.
	a.Meta.Tracker, a.Meta.Appearance = 5, 8
	pub(wire.TracksSubject("cam1"), encode(a), a.MsgID())
	stranger := trackOf(t, "cam1", 11, true, sDescs, sQ)
	pub(wire.TracksSubject("cam1"), encode(stranger), stranger.MsgID())
	// The final report of A's track: the same hit again, stored once.
	aFinal := a
	aFinal.Meta.Final = true
	pub(wire.TracksSubject("cam1"), encode(aFinal), aFinal.MsgID())

	tracks, err := bus.JS.Stream(ctx, wire.TracksStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := tracks.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(hits)
		mu.Unlock()
		if info.State.Msgs == 0 && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %d tracks left in the work queue, %d hits; want 0 and 2", info.State.Msgs, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("match stage: %v", err)
	}

	if got := bus.DeadLetters(StageMatch); got != 3 {
		t.Errorf("dead letters = %d, want 3 (garbage, wrong subject, wrong model)", got)
	}
	for i := 0; i < 3; i++ {
		m, err := dead.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("dead letter %d: %v", i, err)
		}
		if m.Header.Get(wire.HeaderReason) == "" {
			t.Errorf("dead letter %d has no reason", i)
		}
	}
	// Kept in the dead-letter stream, without the descriptors.
	letters, err := natsbus.ListDeadLetters(ctx, bus.JS, StageMatch, 0)
	if err != nil || len(letters) != 3 {
		t.Fatalf("dead letters kept = %d, %v; want 3", len(letters), err)
	}
	for _, l := range letters {
		if l.Bytes != 0 || l.Reason == "" || l.Subject != wire.TracksSubject("cam1") {
			t.Errorf("dead letter %d = %d bytes kept, reason %q, subject %q; want no body, a reason, %s", l.Seq, l.Bytes, l.Reason, l.Subject, wire.TracksSubject("cam1"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := wire.HitID("cam1", 10, "1")
	for _, h := range hits {
		if h.ID != want || h.IdentityName != "John Salley" || h.Watchlist != "missing" || h.Distance > h.Threshold {
			t.Errorf("hit = %s %q on %s at %.3f (threshold %.3f), want %s for John Salley within the threshold", h.ID, h.IdentityName, h.Watchlist, h.Distance, h.Threshold, want)
		}
		if h.Tracker != 5 || h.Appearance != 8 {
			t.Errorf("hit tracker, appearance = %d, %d; want the track's 5, 8", h.Tracker, h.Appearance)
		}
		if h.EnrolledPhoto != match.PhotoHash([]byte("photo-bytes")) {
			t.Errorf("hit enrolled photo = %q, want the enrolment's photo hash", h.EnrolledPhoto)
		}
	}
	hs, err := bus.JS.Stream(ctx, wire.HitsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := hs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("hits stored = %d, want 1 (early and final report of one track are one hit; the stranger none)", info.State.Msgs)
	}
	// The hit carries the crop the detect stage held, asked for because
	// the track matched; the stranger's crop was never asked for.
	raw, err := hs.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	_, im, err := wire.DecodeHitImages(raw.Data)
	if err != nil || string(im.Crop) != string(probeCrop) {
		t.Errorf("hit crop = %q, %v; want the crop the detect stage held, %q", im.Crop, err, probeCrop)
	}
	// With it the scene, its face box drawn now, and the enrolled face:
	// the enrolment's chip as a JPEG.
	checkScene(t, im.Scene, image.Pt(96, 64), sceneBox, 1)
	if chip, err := jpeg.Decode(bytes.NewReader(im.EnrolledChip)); err != nil || chip.Bounds().Size() != image.Pt(12, 12) {
		t.Errorf("hit enrolled chip (%d bytes) = %v, %v; want the enrolment's 12x12 chip as a JPEG", len(im.EnrolledChip), chip, err)
	}
	for {
		m, err := cropReqs.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		if r, err := wire.DecodeCropRequest(m.Data); err != nil || r.Track != 10 {
			t.Errorf("crop request = %+v, %v; want only requests for the matched track 10", r, err)
		}
	}
}

// faceFrames composites one photo moving across a grey frame, as JPEG.
func faceFrames(t *testing.T, photo string, n int) [][]byte {
	t.Helper()
	face := gocv.IMRead(photo, gocv.IMReadColor)
	defer face.Close()
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(face, &big, image.Pt(120, 120), 0, 0, gocv.InterpolationCubic)
	var out [][]byte
	for i := 0; i < n; i++ {
		frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(100, 110, 120, 0), 360, 640, gocv.MatTypeCV8UC3)
		roi := frame.Region(image.Rect(40+30*i, 100, 160+30*i, 220))
		big.CopyTo(&roi)
		roi.Close()
		buf, err := gocv.IMEncode(gocv.JPEGFileExt, frame)
		frame.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf.GetBytes()...))
		buf.Close()
	}
	return out
}

// TestDetectStage sends frames over NATS as a camera stage in another
// process does: malformed frames are dead-lettered, and a face crossing six
// frames becomes one track reported early (after three) and finally (after
// the gap), with descriptors from the real network.
func TestDetectStage(t *testing.T) {
	bus := openBus(t)
	cfg := config.Defaults()
	tc := track.DefaultConfig()
	tc.MaxGap = 600 * time.Millisecond
	// The sighting-count path: no face is good enough to report at once
	// (TestEarlyDecision covers reports at the first good face).
	tc.GoodQuality = 0
	// The frames are published in a burst, not at a camera's pace: none
	// may be shed for having waited behind the others.
	cfg.Detect.MaxWait = 0
	ds, err := NewDetectStage(DetectOptions{Bus: bus, Models: testdata.ModelDir(t), Detect: cfg.Detect, Embed: cfg.Embed, Track: tc, QueueSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ctx := context.Background()
	if err := natsbus.EnsureStreams(ctx, bus.JS, natsbus.Topology{}); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.JS.CreateOrUpdateConsumer(ctx, wire.TracksStream, jetstream.ConsumerConfig{Durable: "t", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runStage(t, ds.Run)
	// Give the subscription a moment to be in place.
	time.Sleep(300 * time.Millisecond)

	good := faceFrames(t, photos(t, "John_Simm")[0], 6)
	now := time.Now().UTC()
	frame := func(seq int, jpeg []byte, w, h int) []byte {
		b, err := wire.EncodeFrame(wire.FrameMeta{Camera: "cam1", Seq: uint64(seq), Time: now.Add(time.Duration(seq) * 200 * time.Millisecond), Width: w, Height: h}, jpeg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bad := map[string][]byte{
		"garbage":       []byte("\x00\x00\x00\x02{}"),
		"not a jpeg":    frame(0, []byte("this is not an image at all"), 640, 360),
		"wrong size":    frame(0, good[0], 320, 200),
		"wrong subject": nil,
	}
	for name, data := range bad {
		subj := wire.FramesSubject("cam1")
		if name == "wrong subject" {
			subj, data = wire.FramesSubject("cam9"), frame(0, good[0], 640, 360)
		}
		if err := bus.Conn.Publish(subj, data); err != nil {
			t.Fatal(err)
		}
	}
	for i, j := range good {
		if err := bus.Conn.Publish(wire.FramesSubject("cam1"), frame(i+1, j, 640, 360)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var reports []wire.Track
	deadline := time.Now().Add(20 * time.Second)
	for len(reports) < 2 && time.Now().Before(deadline) {
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			tr, err := wire.DecodeTrack(m.Data())
			if err != nil {
				t.Fatalf("detect stage published a malformed track: %v", err)
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != tr.MsgID() {
				t.Errorf("track message ID = %q, want %q", m.Headers().Get(jetstream.MsgIDHeader), tr.MsgID())
			}
			reports = append(reports, tr)
			m.Ack()
		}
	}
	// The reports carry no image; the detect stage hands the best face's
	// crop to whoever asks for a reported track, and nothing for others.
	for _, r := range reports {
		if len(r.Crop) != 0 {
			t.Errorf("track report %s carries a %d-byte crop, want none", r.MsgID(), len(r.Crop))
		}
		crop, scene, err := fetchCrop(ctx, bus.Conn, r)
		if err != nil || len(crop) < 100 || crop[0] != 0xff || crop[1] != 0xd8 {
			t.Errorf("crop of %s = %d bytes, %v; want a JPEG", r.MsgID(), len(crop), err)
		}
		// With it the scene: the whole 640x360 frame, the face box drawn.
		checkScene(t, scene, image.Pt(640, 360), r.Meta.Faces[0].Box, 1)
	}
	if len(reports) > 0 {
		unknown := reports[0]
		unknown.Meta.Track++
		if crop, _, err := fetchCrop(ctx, bus.Conn, unknown); crop != nil || err != nil {
			t.Errorf("crop of an unreported track = %d bytes, %v; want none", len(crop), err)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("detect stage: %v", err)
	}
	if got := bus.DeadLetters(StageDetect); got != int64(len(bad)) {
		t.Errorf("dead letters = %d, want %d", got, len(bad))
	}
	// Refused frames are kept with their reason, without the frame.
	letters, err := natsbus.ListDeadLetters(ctx, bus.JS, StageDetect, 0)
	if err != nil || len(letters) != len(bad) {
		t.Fatalf("dead letters kept = %d, %v; want %d", len(letters), err, len(bad))
	}
	for _, l := range letters {
		if l.Bytes != 0 || l.Reason == "" || l.Body == "" {
			t.Errorf("dead letter %d = %d bytes kept, reason %q, body %q; want no body, a reason", l.Seq, l.Bytes, l.Reason, l.Body)
		}
	}
	if len(reports) != 2 {
		t.Fatalf("track reports = %d, want 2 (early and final)", len(reports))
	}
	early, final := reports[0], reports[1]
	if early.Meta.Final || !final.Meta.Final || early.Meta.Track != final.Meta.Track {
		t.Fatalf("reports = %+v / %+v, want an early then a final report of one track", early.Meta, final.Meta)
	}
	// Its own appearance, named by the tracker that made it (told the
	// frame's size by the stage).
	for _, r := range reports {
		if r.Meta.Appearance != r.Meta.Track || r.Meta.Tracker == 0 || r.Meta.Tracker > r.Meta.Track {
			t.Errorf("report %s tracker, appearance = %d, %d; want a tracker up to %d and appearance %d", r.MsgID(), r.Meta.Tracker, r.Meta.Appearance, r.Meta.Track, r.Meta.Track)
		}
	}
	if early.Meta.Seen != tc.EarlyFaces || final.Meta.Seen != len(good) {
		t.Errorf("seen early %d, final %d; want %d and %d", early.Meta.Seen, final.Meta.Seen, tc.EarlyFaces, len(good))
	}
	if len(final.Vectors) != tc.Keep {
		t.Errorf("final report carries %d descriptors, want %d", len(final.Vectors), tc.Keep)
	}
	for i := 1; i < len(final.Meta.Faces); i++ {
		if final.Meta.Faces[i].Quality > final.Meta.Faces[i-1].Quality {
			t.Errorf("faces are not best first: %v", final.Meta.Faces)
		}
	}
	// The same photo in every frame: descriptors of one person.
	a, b := embed.Vector(final.Vectors[0]), embed.Vector(final.Vectors[len(final.Vectors)-1])
	if d := embed.Distance(&a, &b); d > 0.3 {
		t.Errorf("descriptors of one track are %.2f apart, want under 0.3", d)
	}
}

// TestCameraStagePublishes runs the camera stage against a real RTSP server
// with no detect stage in its process: frames travel as JPEG messages, and
// the camera's health is published.
func TestCameraStagePublishes(t *testing.T) {
	ctx := context.Background()
	sc, err := synthcam.Johns(testdata.SharedDir(), 320, 180, 25)
	if err != nil {
		t.Fatal(err)
	}
	sc.Script.Duration = 6 * time.Second
	sc.Script.Appearances = sc.Script.Appearances[:1]
	served, err := synthcam.Serve(ctx, sc.Script, t.TempDir(), synthcam.ServeOptions{Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer served.Server.Close()
	bus := openBus(t)
	frames, err := bus.Conn.SubscribeSync(wire.FramesSubject("c1"))
	if err != nil {
		t.Fatal(err)
	}
	status, err := bus.Conn.SubscribeSync(wire.StatusSubject("c1"))
	if err != nil {
		t.Fatal(err)
	}
	cam := config.CameraDefaults()
	cam.ID, cam.URL, cam.MaxFPS = "c1", served.URL, 5
	cs, err := NewCameraStage(CameraOptions{Bus: bus, Cameras: []config.Camera{cam}, StatusInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, stop := runStage(t, cs.Run)
	var last uint64
	for i := 0; i < 5; i++ {
		m, err := frames.NextMsg(15 * time.Second)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		meta, jpeg, err := wire.DecodeFrame(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		img, err := gocv.IMDecode(jpeg, gocv.IMReadColor)
		if err != nil || img.Cols() != 320 || img.Rows() != 180 || meta.Width != 320 {
			t.Fatalf("frame %d decodes to %dx%d (%v), want 320x180", i, img.Cols(), img.Rows(), err)
		}
		img.Close()
		if meta.Seq <= last {
			t.Errorf("frame seq %d after %d, want increasing", meta.Seq, last)
		}
		last = meta.Seq
	}
	// Statuses published before the first frame say connecting; a later
	// one must say streaming.
	var st wire.CameraStatus
	for deadline := time.Now().Add(5 * time.Second); st.State != "streaming" && time.Now().Before(deadline); {
		m, err := status.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("camera status: %v", err)
		}
		if st, err = wire.DecodeCameraStatus(m.Data); err != nil {
			t.Fatalf("DecodeCameraStatus = %v", err)
		}
	}
	if st.Camera != "c1" || st.State != string(camera.StateStreaming) || st.URL != served.URL {
		t.Errorf("status = %+v, want camera c1 streaming from %s", st, served.URL)
	}
	if err := stop(); err != nil {
		t.Fatalf("camera stage: %v", err)
	}
}

// checkScene checks that scene is a JPEG of size want with a green box
// drawn where box (frame pixels, times scale) is: the middle of each side
// of the box is green, the middle of the box is not.
func checkScene(t *testing.T, scene []byte, want image.Point, box wire.Box, scale float64) {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(scene))
	if err != nil {
		t.Errorf("scene (%d bytes) is not a JPEG: %v", len(scene), err)
		return
	}
	if got := img.Bounds().Size(); got != want {
		t.Errorf("scene is %v, want %v", got, want)
	}
	at := func(x, y int) (r, g, b uint32) {
		r, g, b, _ = img.At(int(float64(x)*scale+0.5), int(float64(y)*scale+0.5)).RGBA()
		return r >> 8, g >> 8, b >> 8
	}
	green := func(x, y int) bool { r, g, b := at(x, y); return g > 160 && r < 110 && b < 110 }
	cx, cy := box.X+box.W/2, box.Y+box.H/2
	for _, p := range []image.Point{{box.X, cy}, {box.X + box.W, cy}, {cx, box.Y}, {cx, box.Y + box.H}} {
		if !green(p.X, p.Y) {
			r, g, b := at(p.X, p.Y)
			t.Errorf("scene pixel at box edge %v (frame pixels) = rgb(%d,%d,%d), want the green box", p, r, g, b)
		}
	}
	if green(cx, cy) {
		t.Errorf("scene pixel at the box centre is green: the box is filled or misplaced")
	}
}

// chipPNG is a 12x12 PNG standing for an enrolment's aligned chip.
func chipPNG(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 12, 12))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// grayJPEG is a mid-grey w×h JPEG.
func grayJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
