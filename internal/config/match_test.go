package config

import (
	"strings"
	"testing"
	"time"
)

// TestMatchValidate: each bad value of the match section is refused with
// an error naming the field.
func TestMatchValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Match)
		wantErr string
	}{
		{"defaults", func(*Match) {}, ""},
		{"zero threshold", func(m *Match) { m.DefaultThreshold = 0 }, "default_threshold"},
		{"negative margin", func(m *Match) { m.Margin = -0.1 }, "margin"},
		{"top_k 0", func(m *Match) { m.TopK = 0 }, "top_k"},
		{"vote_share 1", func(m *Match) { m.VoteShare = 1 }, "vote_share"},
		{"negative face size", func(m *Match) { m.EnrolMinFaceSize = -1 }, "enrol_min_face_size"},
		{"sharpness over 1", func(m *Match) { m.EnrolMinSharpness = 1.5 }, "enrol_min_sharpness"},
		{"negative frontalness", func(m *Match) { m.EnrolMinFrontalness = -0.5 }, "enrol_min_frontalness"},
		{"grace 0 (purge at expiry)", func(m *Match) { m.PurgeGrace = 0 }, ""},
		{"negative grace", func(m *Match) { m.PurgeGrace = -time.Hour }, "purge_grace"},
		{"grace over a year", func(m *Match) { m.PurgeGrace = MaxPurgeGrace + time.Hour }, "purge_grace"},
		{"negative audit detail retention", func(m *Match) { m.AuditDetailRetention = -time.Hour }, "audit_detail_retention"},
		{"sweep every second", func(m *Match) { m.PurgeInterval = time.Second }, "purge_interval"},
		{"sweep every two days", func(m *Match) { m.PurgeInterval = 48 * time.Hour }, "purge_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Defaults().Match
			tc.edit(&m)
			err := m.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Match.Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr+":")):
				t.Errorf("Match.Validate() = %v, want an error starting %q", err, tc.wantErr+":")
			}
		})
	}
	cfg, err := Parse([]byte("match:\n  vote_share: 0.7\n  enrol_min_face_size: 100\n  purge_grace: 168h\n"))
	if err != nil || cfg.Match.VoteShare != 0.7 || cfg.Match.EnrolMinFaceSize != 100 || cfg.Match.PurgeGrace != 168*time.Hour {
		t.Errorf("Parse(match section) = %+v, %v; want vote_share 0.7, enrol_min_face_size 100, purge_grace 168h", cfg.Match, err)
	}
	if d := Defaults().Match; d.PurgeGrace != 30*24*time.Hour || d.PurgeInterval != time.Hour {
		t.Errorf("Defaults().Match purge_grace, purge_interval = %v, %v; want 720h, 1h", d.PurgeGrace, d.PurgeInterval)
	}
}
