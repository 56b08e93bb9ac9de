// Package id4me holds the protocol facts that the registry, the authority and agents share
// and that depend on nothing else: how an identifier names its place in DNS. It is a leaf:
// the agent side imports it without pulling in any server code.
package id4me

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// LocalPartLabelLength is how many hex digits of the hash name an e-mail-form identifier's
// local part in DNS.
const LocalPartLabelLength = 56

// DNSName returns the DNS name of a canonical identifier: the identifier itself for a
// domain, "<h>.<domain>" for an e-mail-form identifier local@domain, where h is the first 56
// lowercase hex digits of SHA-256 over the local part's UTF-8 bytes. The identifier's
// _openid and _acme-challenge records live under this name.
func DNSName(identifier string) string {
	local, domain, ok := strings.Cut(identifier, "@")
	if !ok {
		return identifier
	}
	sum := sha256.Sum256([]byte(local))
	return hex.EncodeToString(sum[:])[:LocalPartLabelLength] + "." + domain
}
