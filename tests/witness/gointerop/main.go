// Command gointerop checks PDS's epoch-log artefacts with Go's own golang.org/x/mod/sumdb
// packages: a cosigned checkpoint with sumdb/note, the C2SP tiles and the inclusion and
// consistency proofs with sumdb/tlog. Written for tests/witness/test_go_interop.py.
//
// Usage: gointerop DIR, where DIR holds checkpoint (the cosigned note), log.vkey,
// witnesses.vkey (one cosignature/v1 vkey a line), claims.json and the tiles under tile/.
// Prints one "ok ..." line per check; exits 1 at the first failure.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

// cosigner verifies C2SP tlog-cosignature "cosignature/v1" signatures (key type 0x04), which
// sumdb/note does not know: note.Open does the key lookup and line parsing, this the crypto.
type cosigner struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	if ts > 1<<63-1 {
		return false
	}
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", ts)), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func newCosigner(vkey string) *cosigner {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		fail("witness vkey %q", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		fail("witness vkey %q: not 0x04 || 32 bytes", vkey)
	}
	// the key ID, computed here from the spec, must be the one the vkey names
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	id := binary.BigEndian.Uint32(h[:4])
	if fmt.Sprintf("%08x", id) != parts[1] {
		fail("witness vkey %q: key ID %s, expected %08x", vkey, parts[1], id)
	}
	return &cosigner{parts[0], id, ed25519.PublicKey(raw[1:])}
}

// dirTiles reads C2SP tlog-tiles paths: Go names tile/8/<L>/<N> what C2SP names tile/<L>/<N>.
type dirTiles struct{ dir string }

func c2spPath(t tlog.Tile) string {
	p := t.Path()
	if t.L == -1 {
		return strings.Replace(p, "tile/8/data/", "tile/entries/", 1)
	}
	return strings.Replace(p, "tile/8/", "tile/", 1)
}

func (d dirTiles) Height() int { return 8 }
func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(c2spPath(t))))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}
func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

type claims struct {
	Roots     map[string]string `json:"roots"` // size -> base64 root
	Inclusion []struct {
		Size  int64    `json:"size"`
		Index int64    `json:"index"`
		Entry string   `json:"entry"` // base64 entry bytes
		Proof []string `json:"proof"`
	} `json:"inclusion"`
	Consistency []struct {
		Size  int64    `json:"size"`
		Old   int64    `json:"old"`
		Proof []string `json:"proof"`
	} `json:"consistency"`
	TilePaths []string `json:"tile_paths"`
}

func hashes(b64 []string) []tlog.Hash {
	out := make([]tlog.Hash, len(b64))
	for i, s := range b64 {
		h, err := tlog.ParseHash(s)
		if err != nil {
			fail("hash %q: %v", s, err)
		}
		out[i] = h
	}
	return out
}

func main() {
	dir := os.Args[1]
	read := func(name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fail("%v", err)
		}
		return data
	}
	logVerifier, err := note.NewVerifier(strings.TrimSpace(string(read("log.vkey"))))
	if err != nil {
		fail("log vkey: %v", err)
	}
	verifiers := []note.Verifier{logVerifier}
	for _, line := range strings.Split(strings.TrimSpace(string(read("witnesses.vkey"))), "\n") {
		verifiers = append(verifiers, newCosigner(line))
	}
	n, err := note.Open(read("checkpoint"), note.VerifierList(verifiers...))
	if err != nil {
		fail("note.Open: %v", err)
	}
	if len(n.Sigs) != len(verifiers) || len(n.UnverifiedSigs) != 0 {
		fail("note.Open verified %d of %d signatures", len(n.Sigs), len(verifiers))
	}
	fmt.Printf("ok note: %d signatures verified (log + %d cosignatures)\n", len(n.Sigs), len(verifiers)-1)

	lines := strings.Split(n.Text, "\n")
	if lines[0] != logVerifier.Name() {
		fail("origin %q", lines[0])
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("size: %v", err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("root: %v", err)
	}

	var c claims
	if err := json.Unmarshal(read("claims.json"), &c); err != nil {
		fail("claims: %v", err)
	}
	for _, p := range c.TilePaths { // our path encoding is Go's, up to the height element
		goPath := strings.Replace(p, "tile/", "tile/8/", 1)
		if strings.HasPrefix(p, "tile/entries/") {
			goPath = strings.Replace(p, "tile/entries/", "tile/8/data/", 1)
		}
		t, err := tlog.ParseTilePath(goPath)
		if err != nil || c2spPath(t) != p {
			fail("tile path %s: %v", p, err)
		}
	}
	fmt.Printf("ok tile paths: %d parsed by tlog.ParseTilePath\n", len(c.TilePaths))

	// TileHashReader authenticates every tile it reads against the signed root
	reader := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, dirTiles{dir})
	got, err := tlog.TreeHash(size, reader)
	if err != nil || got != root {
		fail("TreeHash(%d) from our tiles: %v %v", size, got, err)
	}
	fmt.Printf("ok tiles: TreeHash(%d) from our tiles equals the checkpoint root\n", size)
	for s, b := range c.Roots {
		m, _ := strconv.ParseInt(s, 10, 64)
		want := hashes([]string{b})[0]
		got, err := tlog.TreeHash(m, reader)
		if err != nil || got != want {
			fail("root of size %d: ours %v, Go %v (%v)", m, want, got, err)
		}
	}
	fmt.Printf("ok roots: %d tree sizes agree\n", len(c.Roots))

	for _, inc := range c.Inclusion {
		entry, _ := base64.StdEncoding.DecodeString(inc.Entry)
		proof := tlog.RecordProof(hashes(inc.Proof))
		th := hashes([]string{c.Roots[strconv.FormatInt(inc.Size, 10)]})[0]
		if err := tlog.CheckRecord(proof, inc.Size, th, inc.Index, tlog.RecordHash(entry)); err != nil {
			fail("CheckRecord(size %d, index %d): %v", inc.Size, inc.Index, err)
		}
		goProof, err := tlog.ProveRecord(inc.Size, inc.Index, reader)
		if err != nil || len(goProof) != len(proof) {
			fail("ProveRecord(%d, %d): %v", inc.Size, inc.Index, err)
		}
		for i := range proof {
			if goProof[i] != proof[i] {
				fail("ProveRecord(%d, %d) differs at %d", inc.Size, inc.Index, i)
			}
		}
	}
	fmt.Printf("ok inclusion: %d proofs pass tlog.CheckRecord and equal tlog.ProveRecord\n", len(c.Inclusion))

	for _, con := range c.Consistency {
		proof := tlog.TreeProof(hashes(con.Proof))
		th := hashes([]string{c.Roots[strconv.FormatInt(con.Size, 10)]})[0]
		oh := hashes([]string{c.Roots[strconv.FormatInt(con.Old, 10)]})[0]
		if err := tlog.CheckTree(proof, con.Size, th, con.Old, oh); err != nil {
			fail("CheckTree(%d -> %d): %v", con.Old, con.Size, err)
		}
		goProof, err := tlog.ProveTree(con.Size, con.Old, reader)
		if err != nil || !bytes.Equal(flatten(goProof), flatten(proof)) {
			fail("ProveTree(%d, %d) differs: %v", con.Size, con.Old, err)
		}
	}
	fmt.Printf("ok consistency: %d proofs pass tlog.CheckTree and equal tlog.ProveTree\n", len(c.Consistency))

	// entry bundles: every entry's RecordHash is the level-0 tile hash at its index
	count := int64(0)
	for start := int64(0); start < size; start += 256 {
		width := size - start
		if width > 256 {
			width = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(width)}
		data, err := dirTiles{dir}.ReadTiles([]tlog.Tile{t})
		if err != nil {
			fail("%s: %v", c2spPath(t), err)
		}
		buf := data[0]
		for i := int64(0); i < width; i++ {
			if len(buf) < 2 {
				fail("%s: truncated", c2spPath(t))
			}
			l := int(binary.BigEndian.Uint16(buf))
			entry := buf[2 : 2+l]
			buf = buf[2+l:]
			hs, err := reader.ReadHashes([]int64{tlog.StoredHashIndex(0, start+i)})
			if err != nil || hs[0] != tlog.RecordHash(entry) {
				fail("entry %d: RecordHash differs from the tile: %v", start+i, err)
			}
			count++
		}
	}
	fmt.Printf("ok entries: %d entries hash to their level-0 tile hashes\n", count)
}

func flatten(p []tlog.Hash) []byte {
	var out []byte
	for _, h := range p {
		out = append(out, h[:]...)
	}
	return out
}
