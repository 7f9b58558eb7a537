package natsbus

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/facewatch/facewatch/internal/wire"
)

// TestPermissionTableShape checks the table's own promises, whatever the
// server does with it: no stage role may publish everywhere or call the
// whole JetStream API, every stage role denies stream deletion and
// purging, each role reads its own inbox only, and only the admin and
// match roles touch the hits subject.
func TestPermissionTableShape(t *testing.T) {
	perms := Permissions(PermissionOptions{AlertSubjectPrefix: "facewatch.alerts"})
	if len(perms) != len(Roles()) {
		t.Fatalf("Permissions has %d rows, want one per role (%d)", len(perms), len(Roles()))
	}
	for _, p := range perms {
		if p.Role == RoleAdmin {
			continue
		}
		for _, s := range p.Publish {
			if s == ">" || s == "$JS.API.>" || strings.HasPrefix(s, "$JS.API.STREAM.CREATE") || strings.HasPrefix(s, "$JS.API.STREAM.UPDATE") ||
				strings.HasPrefix(s, "$JS.API.STREAM.DELETE") || strings.HasPrefix(s, "$JS.API.STREAM.PURGE") {
				t.Errorf("role %s may publish %q; stage roles must not create, change, delete or purge streams", p.Role, s)
			}
			if s == wire.HitsWildcard && p.Role != RoleMatch {
				t.Errorf("role %s may publish hits; only match may", p.Role)
			}
			if s == wire.GalleryEvents && p.Role != RoleMatch && p.Role != RoleCurator {
				t.Errorf("role %s may publish gallery events; only match and curator may", p.Role)
			}
		}
		for _, d := range []string{"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>"} {
			if !slices.Contains(p.DenyPublish, d) {
				t.Errorf("role %s does not deny %s", p.Role, d)
			}
		}
		for _, s := range p.Subscribe {
			if strings.HasPrefix(s, "_INBOX") && s != p.Role.InboxPrefix()+".>" {
				t.Errorf("role %s may subscribe to %s, another role's inbox", p.Role, s)
			}
			if s == ">" || s == wire.HitsWildcard || s == wire.GalleryEvents {
				t.Errorf("role %s may subscribe to %s", p.Role, s)
			}
		}
		if !slices.Contains(p.Subscribe, p.Role.InboxPrefix()+".>") {
			t.Errorf("role %s cannot read its own inbox %s", p.Role, p.Role.InboxPrefix())
		}
	}
	for _, r := range []Role{RoleCamera, RoleDetect} {
		p, _ := PermissionFor(PermissionOptions{}, r)
		if !slices.Contains(p.Publish, "$KV."+CameraLeaseBucket+".>") || !slices.Contains(p.Publish, "$JS.API.STREAM.INFO.KV_"+CameraLeaseBucket) {
			t.Errorf("role %s cannot use the camera lease bucket %s", r, CameraLeaseBucket)
		}
	}
}

// TestRolesDocumented keeps docs/pipeline.md's role table in step with
// Permissions: one row per role, naming every subject the role may publish
// or subscribe to (JetStream API subjects by the streams and bucket they
// reach).
func TestRolesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Identities and permissions\n")
	if !ok {
		t.Fatal("docs/pipeline.md has no \"## Identities and permissions\" section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	rows := map[Role]string{}
	for _, line := range strings.Split(section, "\n") {
		for _, r := range Roles() {
			if strings.HasPrefix(line, "| `"+string(r)+"` |") {
				rows[r] = line
			}
		}
	}
	for _, p := range Permissions(PermissionOptions{AlertSubjectPrefix: "facewatch.alerts"}) {
		row, ok := rows[p.Role]
		if !ok {
			t.Errorf("role table has no row for %s", p.Role)
			continue
		}
		for _, s := range slices.Concat(p.Publish, p.Subscribe) {
			want := s
			switch {
			case strings.HasPrefix(s, "$JS.API.") || strings.HasPrefix(s, "$JS.ACK.") || strings.HasPrefix(s, "$JS.FC.") || strings.HasPrefix(s, "$KV."):
				for _, name := range []string{wire.TracksStream, wire.HitsStream, wire.GalleryStream, CameraLeaseBucket} {
					if strings.Contains(s, name) {
						want = name
					}
				}
				if want == s {
					continue
				}
			}
			if !strings.Contains(row, "`"+want+"`") && !strings.Contains(row, want) {
				t.Errorf("role table row of %s does not name %s (from %s)", p.Role, want, s)
			}
		}
	}
}
