package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/eval"
)

// TestPrintFPIRSaysNotMeasurable: a point the set cannot measure is
// printed as "not measurable" with its bound, never as an FPIR of 0.
func TestPrintFPIRSaysNotMeasurable(t *testing.T) {
	est := 0.0123
	rep := &eval.Report{IdentityImpostors: 380, FPIR: []eval.FPIRPoint{
		{Threshold: 0.4, GallerySize: 1, UpperBound: 3.0 / 380},
		{Threshold: 0.4, GallerySize: 10, UpperBound: 0.0762},
		{Threshold: 0.6, GallerySize: 1, Measurable: true, Estimated: &est},
	}}
	var buf bytes.Buffer
	printFPIR(&buf, rep)
	out := buf.String()
	for _, want := range []string{"from 380 identity-level impostor comparisons", "threshold 0.40: N=1 not measurable (under 0.0079); N=10 not measurable (under 0.076);", "threshold 0.60: N=1 0.0123;"} {
		if !strings.Contains(out, want) {
			t.Errorf("printFPIR = %q, want it to contain %q", out, want)
		}
	}
	if strings.Contains(out, " 0;") {
		t.Errorf("printFPIR = %q prints an FPIR of 0", out)
	}
}
