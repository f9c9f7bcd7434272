package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// softAuthenticator is a WebAuthn authenticator and client written for the
// tests: it answers creation and request options as a browser with a
// platform authenticator would, with P-256 keys (ES256) from crypto/ecdsa
// and CBOR from fxamacker/cbor (go-webauthn's own CBOR library). It only
// produces; the server parses every byte of it through go-webauthn. Its
// fields bend one rule at a time for the bad-input tests.
type softAuthenticator struct {
	origin string
	keys   []*softKey
	// noUV clears the user-verified flag; rpIDHashOf, when set, is hashed
	// instead of the options' RP ID; noCount makes keys that never count
	// (always 0), as synced passkeys do.
	noUV       bool
	rpIDHashOf string
	noCount    bool
}

type softKey struct {
	id, userHandle []byte
	rpID           string
	priv           *ecdsa.PrivateKey
	count          uint32
}

var b64url = base64.RawURLEncoding

func newSoftAuthenticator(origin string) *softAuthenticator {
	return &softAuthenticator{origin: origin}
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

func (a *softAuthenticator) flags() byte {
	f := byte(flagUP | flagBE | flagBS)
	if !a.noUV {
		f |= flagUV
	}
	return f
}

func (a *softAuthenticator) rpIDHash(rpID string) []byte {
	if a.rpIDHashOf != "" {
		rpID = a.rpIDHashOf
	}
	h := sha256.Sum256([]byte(rpID))
	return h[:]
}

func (a *softAuthenticator) clientData(t testing.TB, typ, challenge string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// create answers PublicKeyCredentialCreationOptionsJSON with a new key:
// RegistrationResponseJSON with a "none" attestation.
func (a *softAuthenticator) create(t testing.TB, options json.RawMessage) map[string]any {
	t.Helper()
	var o struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatal(err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	handle, err := b64url.DecodeString(o.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	k := &softKey{id: make([]byte, 32), userHandle: handle, rpID: o.RP.ID, priv: priv}
	rand.Read(k.id)
	a.keys = append(a.keys, k)
	return a.register(t, k, o.Challenge)
}

// mint makes a key for rpID and userHandle that no server has seen.
func (a *softAuthenticator) mint(t testing.TB, rpID string, userHandle []byte) *softKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &softKey{id: make([]byte, 32), userHandle: userHandle, rpID: rpID, priv: priv}
	rand.Read(k.id)
	a.keys = append(a.keys, k)
	return k
}

// register answers a creation challenge with the existing key k (a real
// authenticator would not: the tests use it to register a key twice).
func (a *softAuthenticator) register(t testing.TB, k *softKey, challenge string) map[string]any {
	t.Helper()
	ecdh, err := k.priv.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := ecdh.Bytes() // 0x04 || X || Y
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
	if err != nil {
		t.Fatal(err)
	}
	authData := append([]byte{}, a.rpIDHash(k.rpID)...)
	authData = append(authData, a.flags()|flagAT)
	authData = binary.BigEndian.AppendUint32(authData, k.count)
	authData = append(authData, make([]byte, 16)...) // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(k.id)))
	authData = append(authData, k.id...)
	authData = append(authData, cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"id": b64url.EncodeToString(k.id), "rawId": b64url.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64url.EncodeToString(a.clientData(t, "webauthn.create", challenge)),
			"attestationObject": b64url.EncodeToString(att),
			"transports":        []string{"internal", "hybrid"},
		},
	}
}

// get answers PublicKeyCredentialRequestOptionsJSON with k (nil: the first
// key listed in allowCredentials, else the first key of the RP ID):
// AuthenticationResponseJSON, the counter advanced first.
func (a *softAuthenticator) get(t testing.TB, options json.RawMessage, k *softKey) map[string]any {
	t.Helper()
	var o struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		Allow     []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatal(err)
	}
	if k == nil {
		for _, c := range a.keys {
			if c.rpID != o.RPID {
				continue
			}
			if len(o.Allow) == 0 {
				k = c
				break
			}
			for _, al := range o.Allow {
				if al.ID == b64url.EncodeToString(c.id) {
					k = c
				}
			}
			if k != nil {
				break
			}
		}
		if k == nil {
			t.Fatalf("no key for %s", options)
		}
	}
	if !a.noCount {
		k.count++
	}
	return a.assert(t, k, o.Challenge, k.count)
}

// assert signs challenge with k, claiming counter count.
func (a *softAuthenticator) assert(t testing.TB, k *softKey, challenge string, count uint32) map[string]any {
	t.Helper()
	authData := append([]byte{}, a.rpIDHash(k.rpID)...)
	authData = append(authData, a.flags())
	authData = binary.BigEndian.AppendUint32(authData, count)
	cdj := a.clientData(t, "webauthn.get", challenge)
	cdh := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(append([]byte{}, authData...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"id": b64url.EncodeToString(k.id), "rawId": b64url.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64url.EncodeToString(cdj),
			"authenticatorData": b64url.EncodeToString(authData),
			"signature":         b64url.EncodeToString(sig),
			"userHandle":        b64url.EncodeToString(k.userHandle),
		},
	}
}
