package authority

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
)

// subject derives the sub a client knows an identity by: HMAC-SHA-384 keyed with the
// identity's secret seed, over the client's sector for pairwise subjects (OpenID Connect
// Core §8.1) or a fixed label for public ones; 64 base64url characters, like DENIC's. A
// transfer keeps the identity and so the subject; a new registration of the name makes a new
// identity and so a new subject.
func subject(seed string, typ SubjectType, sector string) string {
	m := hmac.New(sha512.New384, []byte(seed))
	if typ == SubjectPairwise {
		m.Write([]byte("pairwise\x00" + sector))
	} else {
		m.Write([]byte("public"))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
