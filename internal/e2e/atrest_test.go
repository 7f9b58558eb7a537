package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/rtsptest"
	"github.com/facewatch/facewatch/internal/synthcam"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/internal/wire"
)

// The at-rest tests play a clip of strangers only (the standard scenario
// without person A) and scan every file facewatch and its NATS server can
// write, while the clip plays and after every process has stopped, for
// face images (JPEG, PNG) and face descriptors: the exact bytes of every
// descriptor the detect stage computed (the test reads them off the
// tracks subject) and any run of 128 float32 values that looks like one.
// A person on no list must leave none of these on any disk
// (docs/privacy.md).

var (
	strangersOnce sync.Once
	strangers     *rtsptest.Clip
	strangersErr  error
)

// strangersClip renders the standard scenario without person A.
func strangersClip(t *testing.T) *rtsptest.Clip {
	t.Helper()
	strangersOnce.Do(func() {
		var sc synthcam.Scenario
		sc, strangersErr = synthcam.Johns(testdata.SharedDir(), width, height, fps)
		if strangersErr != nil {
			return
		}
		sc.Script.Background = testdata.OpenCV(t, "vtest.avi")
		var keep []synthcam.Appearance
		for _, a := range sc.Script.Appearances {
			if a.Identity != sc.Enrolled {
				keep = append(keep, a)
			}
		}
		sc.Script.Appearances = keep
		file := filepath.Join(workDir, "strangers.h264")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, strangersErr = synthcam.Render(ctx, sc.Script, file); strangersErr != nil {
			return
		}
		strangers, strangersErr = rtsptest.LoadClip(file, fps)
	})
	if strangersErr != nil {
		t.Fatal(strangersErr)
	}
	return strangers
}

// descriptorTap records the descriptors the detect stage publishes.
type descriptorTap struct {
	mu      sync.Mutex
	reports int
	vecs    [][]byte // each descriptor's first 64 bytes, as on the wire
}

func tapDescriptors(t *testing.T, nc *nats.Conn) *descriptorTap {
	t.Helper()
	d := &descriptorTap{}
	sub, err := nc.Subscribe(wire.TracksWildcard, func(m *nats.Msg) {
		tr, err := wire.DecodeTrack(m.Data)
		if err != nil {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.reports++
		for _, v := range tr.Vectors {
			b := make([]byte, 64)
			for i := range 16 {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v[i]))
			}
			d.vecs = append(d.vecs, b)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return d
}

func (d *descriptorTap) snapshot() (int, [][]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reports, append([][]byte(nil), d.vecs...)
}

// countJPEG counts JPEG starts: SOI and the first marker (APPn, DQT,
// SOF0, DHT or COM), so that three stray bytes are not taken for one.
func countJPEG(b []byte) int {
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte{0xff, 0xd8, 0xff})
		if j < 0 || i+j+3 >= len(b) {
			return n
		}
		i += j + 3
		if m := b[i]; m == 0xc0 || m == 0xc4 || m == 0xdb || m == 0xfe || (m >= 0xe0 && m <= 0xef) {
			n++
		}
	}
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// scanFile reports the face data in one file's bytes.
func scanFile(b []byte, known [][]byte) []string {
	var found []string
	if n := countJPEG(b); n > 0 {
		found = append(found, fmt.Sprintf("%d JPEG", n))
	}
	if n := bytes.Count(b, pngMagic); n > 0 {
		found = append(found, fmt.Sprintf("%d PNG", n))
	}
	k := 0
	for _, v := range known {
		if bytes.Contains(b, v) {
			k++
		}
	}
	if k > 0 {
		found = append(found, fmt.Sprintf("%d computed descriptors", k))
	}
	if n := descriptorRuns(b); n > 0 {
		found = append(found, fmt.Sprintf("%d descriptor-like float runs", n))
	}
	return found
}

// descriptorRuns counts runs of 128 little-endian float32 (at any byte
// offset) that look like a face descriptor: every value finite, non-zero
// and under 1 in magnitude, most above 1e-3, with an L2 norm between 0.3
// and 3 (dlib's descriptors have norms near 1). Random or text bytes
// almost never give 128 such values in a row.
func descriptorRuns(b []byte) int {
	found := 0
	for align := 0; align < 4; align++ {
		run := 0
		for i := align; i+4 <= len(b); i += 4 {
			x := math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))
			ax := math.Abs(float64(x))
			if math.IsNaN(float64(x)) || ax >= 1 || ax < 1e-6 {
				run = 0
				continue
			}
			run++
			if run < 128 {
				continue
			}
			start := i - 127*4
			var norm float64
			big := 0
			for j := range 128 {
				y := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[start+4*j:])))
				norm += y * y
				if math.Abs(y) > 1e-3 {
					big++
				}
			}
			if norm = math.Sqrt(norm); big >= 100 && norm >= 0.3 && norm <= 3 {
				found++
				run = 0 // count the next one separately
			}
		}
	}
	return found
}

// scanTrees scans every regular file under dirs and returns one line per
// file holding face data.
func scanTrees(dirs []string, known [][]byte) []string {
	var out []string
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil // removed while we walked
			}
			if f := scanFile(b, known); len(f) > 0 {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, fmt.Sprintf("%s: %s", filepath.Join(filepath.Base(dir), rel), strings.Join(f, ", ")))
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// watchAtRest scans dirs every second until the clip has been served,
// then waits for the last tracks to end; it returns what it found.
func watchAtRest(t *testing.T, cam *camServer, tap *descriptorTap, dirs []string) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	end := time.After(90 * time.Second)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var grace <-chan time.Time
	for {
		select {
		case <-cam.path.Done():
			if grace == nil {
				grace = time.After(4 * time.Second) // a track ends a gap after its last face
			}
		case <-grace:
			_, known := tap.snapshot()
			for _, f := range scanTrees(dirs, known) {
				found["after the clip: "+f] = true
			}
			return found
		case <-end:
			t.Fatal("the clip was not served to its end within 90s")
		case <-tick.C:
			_, known := tap.snapshot()
			for _, f := range scanTrees(dirs, known) {
				found["while playing: "+f] = true
			}
		}
	}
}

func report(t *testing.T, what string, found map[string]bool) {
	t.Helper()
	var lines []string
	for f := range found {
		lines = append(lines, f)
	}
	sort.Strings(lines)
	if len(lines) > 0 {
		t.Errorf("face data of strangers at rest %s (%d findings):\n%s", what, len(lines), strings.Join(lines, "\n"))
	}
}

// TestNoStrangerAtRest runs the strangers-only clip through facewatch as
// an all-in-one `facewatch run`, and as separate camera and detect
// processes against a NATS server while no matcher runs (a matcher down
// for maintenance), and finds no face image or descriptor on disk.
func TestNoStrangerAtRest(t *testing.T) {
	clp := strangersClip(t)
	t.Run("run", func(t *testing.T) {
		cam := serveClipOf(t, clp)
		data := t.TempDir()
		cfg := writeConfig(t, "run", data, natsSite{}, cam.url)
		run := start(t, "run", "run", "--config", cfg)
		m := run.waitLine(t, regexp.MustCompile(`nats (nats://\S+)`), 60*time.Second)
		// The embedded server listens for other processes only with
		// authentication: the test taps as the admin identity.
		nc := adminConn(t, m[1], natsbus.DefaultCredsDir(data))
		tap := tapDescriptors(t, nc)
		found := watchAtRest(t, cam, tap, []string{data})
		nc.Close()
		run.stop(t)
		reports, known := tap.snapshot()
		for _, f := range scanTrees([]string{data}, known) {
			found["after facewatch run stopped: "+f] = true
		}
		if reports == 0 || len(known) == 0 {
			t.Fatalf("the detect stage reported %d tracks with %d descriptors; want the strangers' tracks (the scan proves nothing otherwise)", reports, len(known))
		}
		t.Logf("%d track reports, %d descriptors published; scanned %s", reports, len(known), data)
		report(t, "under data_dir (NATS store included)", found)
	})
	t.Run("camera and detect without a matcher", func(t *testing.T) {
		cam := serveClipOf(t, clp)
		natsDir, camData, detData := t.TempDir(), t.TempDir(), t.TempDir()
		srv, err := natsbus.StartServer(context.Background(), natsDir, "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		stopped := false
		stopServer := func() {
			if !stopped {
				stopped = true
				srv.Shutdown()
				srv.WaitForShutdown()
			}
		}
		defer stopServer()
		// As an operator runs it: every process under its role's identity,
		// the topology created as admin.
		site := natsSite{url: srv.ClientURL(), creds: natsbus.DefaultCredsDir(natsDir)}
		nc := adminConn(t, site.url, site.creds)
		createTopology(t, nc)
		tap := tapDescriptors(t, nc)
		detect := start(t, "detect", "detect", "--config", writeConfig(t, "detect", detData, site, ""))
		time.Sleep(2 * time.Second)
		camera := start(t, "camera", "camera", "--config", writeConfig(t, "camera", camData, site, cam.url))
		dirs := []string{natsDir, camData, detData}
		found := watchAtRest(t, cam, tap, dirs)
		camera.stop(t)
		detect.stop(t)
		reports, known := tap.snapshot()
		for _, f := range scanTrees(dirs, known) {
			found["after camera and detect stopped: "+f] = true
		}
		nc.Close()
		stopServer()
		for _, f := range scanTrees(dirs, known) {
			found["after the NATS server stopped: "+f] = true
		}
		if reports == 0 || len(known) == 0 {
			t.Fatalf("the detect stage reported %d tracks with %d descriptors; want the strangers' tracks (the scan proves nothing otherwise)", reports, len(known))
		}
		t.Logf("%d track reports, %d descriptors published, none taken (no matcher)", reports, len(known))
		report(t, "under the NATS store and the stages' data_dir", found)
	})
}

// TestAtRestScanner keeps the scanner honest: it finds a real JPEG, a PNG
// signature, a descriptor it was told of and an unannounced
// descriptor-like run planted among other bytes, and nothing in text and
// zeros.
func TestAtRestScanner(t *testing.T) {
	photo, err := os.ReadFile(strangersPhoto(t))
	if err != nil {
		t.Fatal(err)
	}
	desc := make([]byte, 4*wire.DescriptorDim)
	for i := range wire.DescriptorDim {
		// Values like dlib's: about ±0.09, norm near 1.
		x := float32(0.088 * math.Sin(float64(i)*1.7+0.3))
		binary.LittleEndian.PutUint32(desc[4*i:], math.Float32bits(x))
	}
	pad := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(append(b, []byte("{\"meta\":\"some text around\"}\x00\x00\x01")...), p...)
		}
		return b
	}
	tests := []struct {
		name  string
		data  []byte
		known [][]byte
		want  []string
	}{
		{"jpeg", pad(photo), nil, []string{"1 JPEG"}},
		{"png", pad(pngMagic), nil, []string{"1 PNG"}},
		{"known descriptor", pad(desc), [][]byte{desc[:64]}, []string{"1 computed descriptors", "1 descriptor-like float runs"}},
		{"descriptor at an odd offset", pad([]byte{7}, desc), nil, []string{"1 descriptor-like float runs"}},
		{"text and zeros", pad(bytes.Repeat([]byte("descriptor 0.123 "), 200), make([]byte, 4096)), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scanFile(tc.data, tc.known)
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("scanFile(%s) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

// strangersPhoto is a face photo of the data set, as a JPEG file.
func strangersPhoto(t *testing.T) string {
	t.Helper()
	ps, _ := filepath.Glob(filepath.Join(testdata.SharedDir(), "dlib_johns", "John_*", "*.jpg"))
	if len(ps) == 0 {
		t.Fatalf("no photos under %s", filepath.Join(testdata.SharedDir(), "dlib_johns"))
	}
	return ps[0]
}
