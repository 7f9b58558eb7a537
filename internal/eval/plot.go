package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/facewatch/facewatch/match"
)

var (
	colGenuine  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colImpostor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colOther    = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

// WritePNG draws the report as one PNG of three panels: the genuine and
// impostor distance distributions, the DET curve (FNMR against FMR), and
// the estimated FPIR against gallery size at a few thresholds.
func (r *Report) WritePNG(w io.Writer) error {
	if len(r.genuine) == 0 || len(r.impostor) == 0 {
		return fmt.Errorf("plotting evaluation: %w: no distances (a report read back from JSON cannot be plotted)", match.ErrInvalid)
	}
	hist, err := r.histPlot()
	if err != nil {
		return fmt.Errorf("plotting evaluation: %w", err)
	}
	det, err := r.detPlot()
	if err != nil {
		return fmt.Errorf("plotting evaluation: %w", err)
	}
	fpir, err := r.fpirPlot()
	if err != nil {
		return fmt.Errorf("plotting evaluation: %w", err)
	}
	img := vgimg.New(18*vg.Centimeter, 18*vg.Centimeter)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	plots := [][]*plot.Plot{{hist}, {det}, {fpir}}
	canvases := plot.Align(plots, tiles, dc)
	for j := range plots {
		plots[j][0].Draw(canvases[j][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("writing evaluation plot: %w", err)
	}
	return nil
}

// histOf is the normalised 60-bin histogram of distances the plot draws.
func histOf(v []float64) (*plotter.Histogram, error) {
	h, err := plotter.NewHist(plotter.Values(v), 60)
	if err != nil {
		return nil, err
	}
	h.Normalize(1)
	return h, nil
}

func (r *Report) histPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Distances: %d genuine, %d impostor pairs (EER %.2f%% at %.3f)", len(r.genuine), len(r.impostor), 100*r.EER, r.EERThreshold)
	p.X.Label.Text = "Euclidean distance"
	p.Y.Label.Text = "density"
	var top float64
	for _, s := range []struct {
		name string
		v    []float64
		c    color.Color
	}{{"genuine", r.genuine, colGenuine}, {"impostor", r.impostor, colImpostor}} {
		h, err := histOf(s.v)
		if err != nil {
			return nil, err
		}
		for _, b := range h.Bins {
			top = math.Max(top, b.Weight)
		}
		h.FillColor = nil
		h.LineStyle.Color = s.c
		h.LineStyle.Width = vg.Points(1.2)
		p.Add(h)
		p.Legend.Add(s.name, h)
	}
	// The legend goes top right, where the impostor distances are: leave
	// headroom above the tallest bar for it, so that it covers no bar.
	p.Legend.Top = true
	p.Y.Min, p.Y.Max = 0, top*legendHeadroom
	return p, nil
}

// legendHeadroom is how far above the tallest histogram bar the y axis
// goes, leaving the top band for the legend.
const legendHeadroom = 1.45

func (r *Report) detPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "DET: false non-match rate against false match rate"
	p.X.Label.Text = "FMR"
	p.Y.Label.Text = "FNMR"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, decades{}
	floor := 0.5 / float64(len(r.impostor))
	var pts plotter.XYs
	for _, pt := range r.ROC {
		if pt.FMR <= 0 {
			continue
		}
		pts = append(pts, plotter.XY{X: pt.FMR, Y: pt.FNMR})
	}
	if len(pts) < 2 {
		pts = append(pts, plotter.XY{X: floor, Y: 1}, plotter.XY{X: 1, Y: 0})
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	l.Color = colGenuine
	p.Add(l)
	p.X.Min = math.Max(floor, 1e-6)
	p.X.Max = 1
	return p, nil
}

func (r *Report) fpirPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Open-set FPIR against gallery size (estimated 1-(1-p)^N)"
	p.X.Label.Text = "identities enrolled"
	p.Y.Label.Text = "FPIR"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, decades{}
	for _, sr := range r.fpirSeries() {
		l, err := plotter.NewLine(sr.pts)
		if err != nil {
			return nil, err
		}
		l.Color = sr.color
		if sr.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(sr.label, l)
	}
	var rec plotter.XYs
	for _, rc := range r.Recommendations {
		rec = append(rec, plotter.XY{X: float64(rc.GallerySize), Y: r.TargetFPIR})
	}
	if len(rec) > 0 {
		s, err := plotter.NewScatter(rec)
		if err != nil {
			return nil, err
		}
		p.Add(s)
		p.Legend.Add(fmt.Sprintf("target %.2g at recommended thresholds", r.TargetFPIR), s)
	}
	p.Legend.Left, p.Legend.Top = false, false
	p.Legend.YOffs = vg.Millimeter * 8
	return p, nil
}

// fpirLine is one line of the FPIR panel.
type fpirLine struct {
	label  string
	pts    plotter.XYs
	color  color.Color
	dashed bool
}

// fpirSeries is the FPIR panel's lines: per threshold, the measurable
// estimates as a solid line; where the set cannot measure the FPIR (no
// impostor within the threshold), its 95% upper bound as a dashed line
// labelled "not measurable", never a line at zero.
func (r *Report) fpirSeries() []fpirLine {
	cols := []color.Color{colGenuine, colOther, colImpostor}
	var order []float64
	est, bound := map[float64]plotter.XYs{}, map[float64]plotter.XYs{}
	for _, pt := range r.FPIR {
		if _, ok := est[pt.Threshold]; !ok {
			order = append(order, pt.Threshold)
			est[pt.Threshold] = nil
		}
		if pt.Measurable {
			est[pt.Threshold] = append(est[pt.Threshold], plotter.XY{X: float64(pt.GallerySize), Y: *pt.Estimated})
		} else {
			bound[pt.Threshold] = append(bound[pt.Threshold], plotter.XY{X: float64(pt.GallerySize), Y: pt.UpperBound})
		}
	}
	var out []fpirLine
	for i, t := range order {
		c := cols[i%len(cols)]
		if len(est[t]) > 0 {
			out = append(out, fpirLine{label: fmt.Sprintf("threshold %.2f", t), pts: est[t], color: c})
		}
		if len(bound[t]) > 0 {
			out = append(out, fpirLine{label: fmt.Sprintf("threshold %.2f: not measurable (no impostor within it of %d); dashed: 95%% upper bound", t, r.IdentityImpostors),
				pts: bound[t], color: c, dashed: true})
		}
	}
	return out
}

// decades ticks a log axis at powers of ten, labelled 1e-05, 0.001, 1, 100.
type decades struct{}

func (decades) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		v := math.Pow(10, e)
		if v < lo*0.999 || v > hi*1.001 {
			continue
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
	}
	return ts
}
