// Package evidence writes and checks evidence bundles: one JSON document
// holding the parts of a piece of evidence (images, JSON records) in
// base64, a manifest naming each part with its size and SHA-256, and an
// ed25519 signature over the manifest, made with a site key kept in a
// file outside any database. Verify checks a bundle offline and names
// each part that was altered, or the signature. It knows nothing of
// alerts, databases or stages (package alert fills the parts), so that a
// verifier needs nothing else.
package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Format names this version of the bundle layout.
const Format = "facewatch-evidence/1"

// Part is one piece of evidence to bundle.
type Part struct {
	Name      string
	MediaType string
	Data      []byte
}

// PartInfo is a part as the manifest lists it.
type PartInfo struct {
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
	Size      int    `json:"size"`
	SHA256    string `json:"sha256"`
}

// Omitted names a part that could not be included, and why (an enrolled
// photo purged from the gallery, a crop removed by retention).
type Omitted struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Manifest is the signed description of a bundle.
type Manifest struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	// Subject is what the evidence is about ("alert/42").
	Subject    string     `json:"subject"`
	Case       string     `json:"case"`
	ExportedBy string     `json:"exported_by"`
	Parts      []PartInfo `json:"parts"`
	Omitted    []Omitted  `json:"omitted,omitempty"`
	// PublicKey is the signer's ed25519 public key (base64); KeyID its
	// fingerprint (KeyID).
	PublicKey string `json:"public_key"`
	KeyID     string `json:"key_id"`
}

// Bundle is the file: the manifest exactly as signed, the signature and
// the parts by name.
type Bundle struct {
	Manifest json.RawMessage `json:"manifest"`
	// Signature is base64 of ed25519(key, compact JSON of Manifest).
	Signature string `json:"signature"`
	// Parts maps each part's name to base64 of its bytes.
	Parts map[string]string `json:"parts"`
}

// KeyID is a public key's fingerprint: hex of the first 16 bytes of its
// SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:16])
}

// Build returns the bundle of parts described by m (its Format, Parts,
// PublicKey and KeyID are filled in here), signed with key, as indented
// JSON.
func Build(m Manifest, parts []Part, key ed25519.PrivateKey) ([]byte, error) {
	m.Format = Format
	m.Parts = nil
	b := Bundle{Parts: map[string]string{}}
	for _, p := range parts {
		if p.Name == "" || b.Parts[p.Name] != "" {
			return nil, fmt.Errorf("building evidence bundle: part name %q empty or repeated", p.Name)
		}
		s := sha256.Sum256(p.Data)
		m.Parts = append(m.Parts, PartInfo{Name: p.Name, MediaType: p.MediaType, Size: len(p.Data), SHA256: hex.EncodeToString(s[:])})
		b.Parts[p.Name] = base64.StdEncoding.EncodeToString(p.Data)
	}
	pub := key.Public().(ed25519.PublicKey)
	m.PublicKey, m.KeyID = base64.StdEncoding.EncodeToString(pub), KeyID(pub)
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("building evidence bundle: %w", err)
	}
	b.Manifest = raw
	b.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw))
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("building evidence bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// Report is what Verify found.
type Report struct {
	// Manifest is the bundle's manifest (zero when it did not parse).
	Manifest Manifest
	// KeyID is the fingerprint of the key the signature was checked
	// against; Trusted says whether that key was given by the caller
	// rather than taken from the bundle itself.
	KeyID   string
	Trusted bool
	// Problems names each thing altered or missing, one line each; none
	// means the bundle is intact.
	Problems []string
	// Parts are the decoded parts whose hashes match.
	Parts map[string][]byte
}

// OK reports whether the bundle verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// ErrNotBundle is returned when the data is not an evidence bundle at all.
var ErrNotBundle = errors.New("not an evidence bundle")

// Verify checks a bundle offline: the signature over the manifest (with
// trusted when given, else with the key the bundle carries, which proves
// only that it is intact as its signer made it), and each part's size and
// SHA-256 against the manifest. Every problem is named in the report;
// the error is for data that is not a bundle at all.
func Verify(data []byte, trusted ed25519.PublicKey) (*Report, error) {
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotBundle, err)
	}
	if len(b.Manifest) == 0 {
		return nil, fmt.Errorf("%w: no manifest", ErrNotBundle)
	}
	r := &Report{Parts: map[string][]byte{}}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	// The signature covers the manifest's compact form, whatever
	// whitespace the file carries.
	var signed bytes.Buffer
	if err := json.Compact(&signed, b.Manifest); err != nil {
		problem("manifest: not valid JSON (altered)")
		return r, nil
	}
	if err := json.Unmarshal(signed.Bytes(), &r.Manifest); err != nil {
		problem("manifest: does not parse (altered): %v", err)
		return r, nil
	}
	m := &r.Manifest
	if m.Format != Format {
		problem("manifest: format %q, want %q", m.Format, Format)
	}
	embedded, err := base64.StdEncoding.DecodeString(m.PublicKey)
	if err != nil || len(embedded) != ed25519.PublicKeySize {
		problem("manifest: public_key is not an ed25519 key (altered)")
		embedded = nil
	}
	key := ed25519.PublicKey(embedded)
	if trusted != nil {
		r.Trusted = true
		if !bytes.Equal(trusted, embedded) {
			problem("public key: the bundle names key %s, not the given key %s (signed with another key, or the key in the manifest was altered)", m.KeyID, KeyID(trusted))
		}
		key = trusted
	}
	if key != nil {
		r.KeyID = KeyID(key)
		sig, err := base64.StdEncoding.DecodeString(b.Signature)
		switch {
		case err != nil || len(sig) != ed25519.SignatureSize:
			problem("signature: malformed (altered or truncated)")
		case !ed25519.Verify(key, signed.Bytes(), sig):
			problem("signature: does not verify with key %s (the signature or the manifest was altered)", r.KeyID)
		}
	}
	listed := map[string]bool{}
	for _, p := range m.Parts {
		listed[p.Name] = true
		enc, ok := b.Parts[p.Name]
		if !ok {
			problem("part %s: missing", p.Name)
			continue
		}
		data, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			problem("part %s: not valid base64 (altered)", p.Name)
			continue
		}
		s := sha256.Sum256(data)
		switch {
		case hex.EncodeToString(s[:]) != p.SHA256:
			problem("part %s: SHA-256 %s does not match the manifest's %s (altered)", p.Name, hex.EncodeToString(s[:8]), short(p.SHA256))
		case len(data) != p.Size:
			problem("part %s: %d bytes, the manifest says %d (altered)", p.Name, len(data), p.Size)
		default:
			r.Parts[p.Name] = data
		}
	}
	var extra []string
	for name := range b.Parts {
		if !listed[name] {
			extra = append(extra, name)
		}
	}
	slices.Sort(extra)
	for _, name := range extra {
		problem("part %s: not in the manifest (added)", name)
	}
	return r, nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
