package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The files of the audit directory. The keys are written once, on first
// start; the checkpoint files grow by one line per checkpoint.
const (
	macKeyFile  = "hmac.key"
	signKeyFile = "ed25519.key"
	pubKeyFile  = "ed25519.pub"
	cpSuffix    = ".checkpoints"
)

// Keys are an installation's audit keys: the HMAC-SHA256 key that chains
// the entries of every audit log, and the ed25519 key that signs their
// checkpoints. They live in a directory of their own, never in a
// database, so that whoever can write a database cannot recompute its
// chain or forge a checkpoint.
type Keys struct {
	dir  string
	mac  []byte
	sign ed25519.PrivateKey
}

// LoadKeys loads the keys from dir, generating them when dir holds none
// (first start). dir must be a directory of its own: not one of apart
// (the databases' directories), readable by its owner only (0700), its
// key files 0600. A dir holding some key files but not all is refused:
// something removed a key.
func LoadKeys(dir string, apart ...string) (*Keys, error) {
	if dir == "" {
		return nil, errors.New("loading audit keys: no audit directory configured")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("loading audit keys: %w", err)
	}
	for _, a := range apart {
		if aa, err := filepath.Abs(a); err == nil && aa == abs {
			return nil, fmt.Errorf("loading audit keys: audit directory %s is a database's directory; keep the keys apart from the data they protect", dir)
		}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("creating audit directory: %w", err)
	}
	if err := privateMode(abs, true); err != nil {
		return nil, err
	}
	k := &Keys{dir: abs}
	// Two stages of one installation often start at the same moment
	// against one audit directory; the lock makes "look, and generate
	// when there is nothing" one step, so that neither sees the other's
	// half-written set.
	unlock, err := lockDir(abs)
	if err != nil {
		return nil, err
	}
	defer unlock()
	names := []string{macKeyFile, signKeyFile}
	have := 0
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(abs, n)); err == nil {
			have++
		}
	}
	switch have {
	case 0:
		if err := k.generate(); err != nil {
			return nil, err
		}
	case len(names):
	default:
		return nil, fmt.Errorf("loading audit keys: %s holds only some of %s: a key was removed; restore it from backup", dir, strings.Join(names, ", "))
	}
	mac, err := readKey(filepath.Join(abs, macKeyFile), 32)
	if err != nil {
		return nil, err
	}
	seed, err := readKey(filepath.Join(abs, signKeyFile), ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	k.mac, k.sign = mac, ed25519.NewKeyFromSeed(seed)
	return k, nil
}

// generate writes new keys. The caller holds the directory's lock; each
// file is written under a temporary name and renamed into place, the
// signing key last, so that a crash part-way leaves either no keys (and
// the next start generates them) or a set that says a key is missing.
func (k *Keys) generate() error {
	var mac, seed [32]byte
	if _, err := rand.Read(mac[:]); err != nil {
		return fmt.Errorf("generating audit key: %w", err)
	}
	if _, err := rand.Read(seed[:]); err != nil {
		return fmt.Errorf("generating audit signing key: %w", err)
	}
	pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	for _, f := range []struct {
		name string
		data []byte
	}{{pubKeyFile, pub}, {macKeyFile, mac[:]}, {signKeyFile, seed[:]}} {
		if err := writeNew(filepath.Join(k.dir, f.name), []byte(hex.EncodeToString(f.data)+"\n")); err != nil {
			return fmt.Errorf("writing audit key %s: %w", f.name, err)
		}
	}
	return syncDir(k.dir)
}

// writeNew writes b to path through a temporary file and a rename that
// refuses to replace an existing file (link, then remove the temporary).
func writeNew(path string, b []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // left by a crash mid-write
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if rerr := os.Remove(tmp); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}

// lockDir takes an exclusive lock on dir's lock file, waiting for another
// process that holds it, and returns its release.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking audit directory: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking audit directory %s: %w", dir, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func readKey(path string, size int) ([]byte, error) {
	if err := privateMode(path, false); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading audit key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != size {
		return nil, fmt.Errorf("reading audit key %s: not %d bytes of hex", path, size)
	}
	return k, nil
}

// privateMode refuses a key file or directory that others may read.
func privateMode(path string, dir bool) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking audit key permissions: %w", err)
	}
	if dir != st.IsDir() {
		return fmt.Errorf("checking audit key permissions: %s is not a %s", path, map[bool]string{true: "directory", false: "file"}[dir])
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		want := "600"
		if dir {
			want = "700"
		}
		return fmt.Errorf("audit key %s is open to group or others (mode %03o): chmod %s it", path, m, want)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Dir is the directory the keys (and, by default, the checkpoints) live in.
func (k *Keys) Dir() string { return k.dir }

// Public is the checkpoint signing key's public half: enough to check a
// checkpoint or a signed export, not to make one.
func (k *Keys) Public() ed25519.PublicKey { return k.sign.Public().(ed25519.PublicKey) }

// ID names the key set: the first 16 hex digits of SHA-256 of the public
// key. Checkpoints and the keyed-era entry carry it, so that a log
// checked against the wrong keys says so.
func (k *Keys) ID() string { return KeyID(k.Public()) }

// KeyID is Keys.ID for a public key alone.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Sign signs msg with the checkpoint key (for other signed records, such
// as evidence exports, that must tie to the same key).
func (k *Keys) Sign(msg []byte) []byte { return ed25519.Sign(k.sign, msg) }
