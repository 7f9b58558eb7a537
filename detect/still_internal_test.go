package detect

import "testing"

// TestFallbackSize: the fallback never searches more than its pixel budget:
// larger photos are downscaled (keeping their aspect), photos of a quarter
// of it or less are upsampled once.
func TestFallbackSize(t *testing.T) {
	const budget = 1 << 20
	for _, tc := range []struct {
		name   string
		w, h   int
		wantW  int
		wantH  int
		wantUp int
	}{
		{"large", 2100, 1400, 1254, 836, 0},
		{"at budget", 1024, 1024, 1024, 1024, 0},
		{"half budget", 1024, 512, 1024, 512, 0},
		{"quarter budget", 512, 512, 512, 512, 1},
		{"tiny", 250, 250, 250, 250, 1},
		{"no budget", 4000, 3000, 4000, 3000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := int64(budget)
			if tc.name == "no budget" {
				b = 0
			}
			w, h, up := fallbackSize(tc.w, tc.h, b)
			if w != tc.wantW || h != tc.wantH || up != tc.wantUp {
				t.Errorf("fallbackSize(%d, %d, %d) = %d, %d, %d; want %d, %d, %d", tc.w, tc.h, b, w, h, up, tc.wantW, tc.wantH, tc.wantUp)
			}
			if b > 0 && int64(w*h)<<(2*up) > b {
				t.Errorf("fallbackSize(%d, %d) searches %d pixels, over the budget %d", tc.w, tc.h, int64(w*h)<<(2*up), b)
			}
		})
	}
}
