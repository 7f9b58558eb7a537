package detect_test

import (
	"context"
	"fmt"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/testdata"
)

// streetFrame is a 1920x1080 frame of people walking toward the camera
// (videos/walking_royal_opera_house.mp4), resized to w x h.
func streetFrame(b *testing.B, w, h int) gocv.Mat {
	b.Helper()
	vc, err := gocv.VideoCaptureFile(testdata.Path(b, "videos/walking_royal_opera_house.mp4"))
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	for range 61 { // frame 60: three faces found at full size, upsampled
		if !vc.Read(&m) || m.Empty() {
			b.Fatal("reading the street video")
		}
	}
	out := gocv.NewMat()
	gocv.Resize(m, &out, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	return out
}

// BenchmarkHOG: ms per frame for the HOG detector with landmarks and chips,
// at three frame sizes, on the full frame (upsampled once, to find faces
// down to about 40 pixels) and on a copy downscaled to half width (not
// upsampled: faces down to about 160 pixels of the full frame).
func BenchmarkHOG(b *testing.B) {
	for _, sz := range []image.Point{{640, 480}, {1280, 720}, {1920, 1080}} {
		frame := streetFrame(b, sz.X, sz.Y)
		for _, mode := range []struct {
			name               string
			maxWidth, upsample int
		}{
			{"full", 0, 0},
			{"full_up1", 0, 1},
			{"half", sz.X / 2, 0},
		} {
			b.Run(fmt.Sprintf("%dx%d/%s", sz.X, sz.Y, mode.name), func(b *testing.B) {
				d := newDetector(b, func(c *detectCfg) { c.MaxWidth, c.Upsample = mode.maxWidth, mode.upsample })
				faces := 0
				cpu0 := cpuTime(b)
				for b.Loop() {
					fs, err := d.Detect(context.Background(), frame)
					if err != nil {
						b.Fatal(err)
					}
					faces = len(fs)
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/frame")
				b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/frame")
				b.ReportMetric(float64(faces), "faces")
			})
		}
		frame.Close()
	}
}

// BenchmarkCNN: ms per 640x480 frame for the MMOD CNN detector on the CPU.
func BenchmarkCNN(b *testing.B) {
	frame := streetFrame(b, 640, 480)
	defer frame.Close()
	d := newDetector(b, func(c *detectCfg) { c.Detector, c.MaxWidth = "cnn", 0 })
	faces := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		fs, err := d.Detect(context.Background(), frame)
		if err != nil {
			b.Fatal(err)
		}
		faces = len(fs)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/frame")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/frame")
	b.ReportMetric(float64(faces), "faces")
}

// BenchmarkDecode: JPEG decoding of a 540x810 photo (libjpeg-turbo
// straight to BGR, with the header and EXIF checks first).
func BenchmarkDecode(b *testing.B) {
	data := portraitBytes(b)
	for b.Loop() {
		m, err := detect.Decode(data, 0)
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}
