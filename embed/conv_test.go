package embed_test

import (
	"math"
	"testing"

	"github.com/facewatch/facewatch/internal/dlib/resnet"
	"github.com/facewatch/facewatch/internal/testdata"
	"github.com/facewatch/facewatch/models"
)

// convLayers is how many convolution layers dlib's face recognition ResNet
// has: the 7x7 one at the bottom and two 3x3 ones in each of its 14 residual
// blocks.
const convLayers = 29

// TestFastConvMatchesStock: the network on resnet's own convolution layer
// gives the same descriptors, bit for bit, as the network on dlib's con_
// (dnn_face_recognition_ex.cpp's type), one chip at a time, in batches with
// a partial last batch, and jittered; and every convolution of the first
// network took the new layer's path (a network that fell back to dlib's
// path, or skipped a layer, would fail the counts or the bits).
func TestFastConvMatchesStock(t *testing.T) {
	p, err := testdata.ModelDir(t).Path(models.ResNetV1)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := resnet.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	stock, err := resnet.LoadStock(p)
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Close()
	if l, c := stock.FastConvs(); l != 0 || c != 0 {
		t.Fatalf("stock network: FastConvs() = %d layers, %d calls, want 0, 0", l, c)
	}

	all, who := johnsChips(t)
	// Chips of different people, so that the comparison covers varied inputs.
	var chips []byte
	seen := map[string]int{}
	for i, c := range all {
		if seen[who[i]] < 2 && len(chips) < 7*resnet.ChipBytes {
			seen[who[i]]++
			chips = append(chips, c.Pix...)
		}
	}
	n := len(chips) / resnet.ChipBytes
	if n < 7 {
		t.Fatalf("picked %d chips, want 7", n)
	}

	// A CUDA build keeps dlib's con_ (it runs on the GPU): no layer of the
	// network is the new one, and the two networks are the same type.
	wantLayers := convLayers
	if testdata.DlibBuiltWithCUDA(t) {
		wantLayers = 0
	}
	var passes uint64
	check := func(name string, chips []byte, batch, jitter int) {
		t.Helper()
		count := len(chips) / resnet.ChipBytes
		got := make([]float32, count*resnet.Dim)
		want := make([]float32, count*resnet.Dim)
		if err := fast.Embed(chips, batch, jitter, got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := stock.Embed(chips, batch, jitter, want); err != nil {
			t.Fatalf("%s: stock: %v", name, err)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: chip %d, element %d = %v (%#08x), stock network %v (%#08x)",
					name, i/resnet.Dim, i%resnet.Dim, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
		if jitter > 0 {
			passes += uint64(count * ((jitter + batch - 1) / batch))
		} else {
			passes += uint64((count + batch - 1) / batch)
		}
		layers, calls := fast.FastConvs()
		if layers != wantLayers || calls != passes*uint64(wantLayers) {
			t.Fatalf("%s: FastConvs() = %d layers, %d calls, want %d, %d", name, layers, calls, wantLayers, passes*uint64(wantLayers))
		}
	}
	for i := 0; i < n; i++ {
		check("batch 1", chips[i*resnet.ChipBytes:(i+1)*resnet.ChipBytes], 1, 0)
	}
	check("batch 7", chips, 7, 0)
	check("batch 3 (partial last batch)", chips, 3, 0)
	check("jitter 3, batch 2", chips[:resnet.ChipBytes], 2, 3)
}
