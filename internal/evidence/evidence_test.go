package evidence

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testKey(t *testing.T, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// testParts are a bundle's typical parts: an image and JSON records.
func testParts() []Part {
	img := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, bytes.Repeat([]byte("jpegdata"), 200)...)
	return []Part{
		{Name: "alert.json", MediaType: "application/json", Data: []byte(`{"id":42,"identity_name":"Jane Doe","distance":0.31}`)},
		{Name: "probe.jpg", MediaType: "image/jpeg", Data: img},
		{Name: "enrolled.jpg", MediaType: "image/jpeg", Data: append(img[:4:4], []byte("enrolled photo")...)},
	}
}

func build(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Build(Manifest{Created: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), Subject: "alert/42", Case: "2026/0147",
		ExportedBy: "ivy (investigator)", Omitted: []Omitted{{Name: "note", Reason: "test"}}}, testParts(), key)
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	return b
}

// edit decodes a bundle, lets f change it and encodes it again the way
// Build does.
func edit(t *testing.T, data []byte, f func(b *Bundle)) []byte {
	t.Helper()
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	f(&b)
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// flipPart changes one byte of a part's decoded bytes.
func flipPart(name string, at int) func(b *Bundle) {
	return func(b *Bundle) {
		d, _ := base64.StdEncoding.DecodeString(b.Parts[name])
		d[at] ^= 0x01
		b.Parts[name] = base64.StdEncoding.EncodeToString(d)
	}
}

func TestVerify(t *testing.T) {
	key := testKey(t, 1)
	pub := key.Public().(ed25519.PublicKey)
	other := testKey(t, 2).Public().(ed25519.PublicKey)
	good := build(t, key)
	tests := []struct {
		name    string
		data    []byte
		trusted ed25519.PublicKey
		want    []string // prefixes of the problems, in order; none: intact
	}{
		{"untouched, embedded key", good, nil, nil},
		{"untouched, trusted key", good, pub, nil},
		{"one byte of the image", edit(t, good, flipPart("probe.jpg", 100)), pub, []string{"part probe.jpg: SHA-256"}},
		{"one byte of the alert JSON", edit(t, good, flipPart("alert.json", 10)), pub, []string{"part alert.json: SHA-256"}},
		{"one byte of the signature", edit(t, good, func(b *Bundle) {
			s, _ := base64.StdEncoding.DecodeString(b.Signature)
			s[7] ^= 0x01
			b.Signature = base64.StdEncoding.EncodeToString(s)
		}), pub, []string{"signature: does not verify"}},
		{"one byte of the manifest", edit(t, good, func(b *Bundle) {
			b.Manifest = bytes.Replace(b.Manifest, []byte("2026/0147"), []byte("2026/0148"), 1)
		}), pub, []string{"signature: does not verify"}},
		{"wrong public key", good, other, []string{"public key: the bundle names key", "signature: does not verify"}},
		{"re-signed with another key, embedded key swapped", build(t, testKey(t, 3)), pub, []string{"public key:", "signature: does not verify"}},
		{"part removed", edit(t, good, func(b *Bundle) { delete(b.Parts, "enrolled.jpg") }), pub, []string{"part enrolled.jpg: missing"}},
		{"part added", edit(t, good, func(b *Bundle) { b.Parts["extra.jpg"] = "AAAA" }), pub, []string{"part extra.jpg: not in the manifest"}},
		{"truncated signature", edit(t, good, func(b *Bundle) { b.Signature = b.Signature[:20] }), pub, []string{"signature: malformed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Verify(tc.data, tc.trusted)
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if len(r.Problems) != len(tc.want) {
				t.Fatalf("Verify() problems = %q, want %d starting %q", r.Problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(r.Problems[i], w) {
					t.Errorf("Verify() problem %d = %q, want it to start %q", i, r.Problems[i], w)
				}
			}
			if len(tc.want) == 0 {
				for _, p := range testParts() {
					if !bytes.Equal(r.Parts[p.Name], p.Data) {
						t.Errorf("Verify().Parts[%s] differs from what was bundled", p.Name)
					}
				}
				if r.Manifest.Case != "2026/0147" || r.Manifest.Subject != "alert/42" || r.KeyID != KeyID(pub) || len(r.Manifest.Omitted) != 1 {
					t.Errorf("Verify().Manifest = %+v, key %s; want the case, subject, omission and key %s", r.Manifest, r.KeyID, KeyID(pub))
				}
			}
		})
	}
	// One byte of the file itself, inside the image's base64 text.
	i := bytes.Index(good, []byte(`"probe.jpg": "`)) + len(`"probe.jpg": "`) + 40
	raw := bytes.Clone(good)
	if raw[i] == 'A' {
		raw[i] = 'B'
	} else {
		raw[i] = 'A'
	}
	if r, err := Verify(raw, pub); err != nil || len(r.Problems) != 1 || !strings.HasPrefix(r.Problems[0], "part probe.jpg:") {
		t.Errorf("Verify(file with one base64 character of probe.jpg changed) = %+v, %v; want one problem naming probe.jpg", r, err)
	}
	for _, bad := range [][]byte{[]byte("not json"), []byte(`{"parts":{}}`)} {
		if _, err := Verify(bad, nil); err == nil {
			t.Errorf("Verify(%q) = nil error, want ErrNotBundle", bad)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "evidence.pem")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey(new) = created %v, %v; want a new key", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode = %v, want 0700", dst.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Errorf("LoadOrCreateKey(existing) = created %v, same key %v, %v; want the same key, not created", created, k1.Equal(k2), err)
	}
	pub := k1.Public().(ed25519.PublicKey)
	for name, form := range map[string][]byte{"PEM": PublicKeyPEM(pub), "base64": []byte(base64.StdEncoding.EncodeToString(pub) + "\n")} {
		got, err := ParsePublicKey(form)
		if err != nil || !got.Equal(pub) {
			t.Errorf("ParsePublicKey(%s) = %v, %v; want the key back", name, got, err)
		}
	}
	if _, err := ParsePublicKey([]byte("garbage")); err == nil {
		t.Error("ParsePublicKey(garbage) = nil error")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadOrCreateKey(mode 0644) = %v, want a refusal saying chmod 600", err)
	}
}
