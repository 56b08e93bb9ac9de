package registry

import (
	"cmp"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/id4me/id4me-registry/internal/publicaddr"
)

// Relying parties fetch claims from the claims endpoint the registry names, and agents'
// access tokens are addressed to their issuer. An endpoint that points into a private
// network would make every RP that follows it reach into its own network (server-side
// request forgery): cloud metadata services on 169.254.169.254, admin interfaces on
// loopback. So outside dev mode an endpoint or issuer that is an IP literal must be a
// public address. Host names are not resolved here: what they resolve to is the agent's
// DNS, which can change at any time, so RPs have to guard their own fetches anyway. Which
// addresses are public is publicaddr's to say, for the authority's fetches too.

// urlField is a URL field an agent gives, with the reason of each refusal.
type urlField struct {
	name           string
	required       Reason
	malformed      Reason
	userinfo       Reason
	fragment       Reason
	portInvalid    Reason
	notHTTPS       Reason
	privateAddress Reason
}

// The URL fields checkEndpointURL checks.
var (
	claimsEndpointURL = urlField{
		name: "claims_endpoint", required: ReasonClaimsEndpointRequired, malformed: ReasonClaimsEndpointMalformed,
		userinfo: ReasonClaimsEndpointUserinfo, fragment: ReasonClaimsEndpointFragment, portInvalid: ReasonClaimsEndpointPortInvalid,
		notHTTPS: ReasonClaimsEndpointNotHTTPS, privateAddress: ReasonClaimsEndpointPrivateAddress,
	}
	issuerURL = urlField{
		name: "issuer", required: ReasonIssuerRequired, malformed: ReasonIssuerMalformed,
		userinfo: ReasonIssuerUserinfo, fragment: ReasonIssuerFragment, portInvalid: ReasonIssuerPortInvalid,
		notHTTPS: ReasonIssuerNotHTTPS, privateAddress: ReasonIssuerPrivateAddress,
	}
)

// checkEndpointURL validates an endpoint or issuer URL an agent gives: absolute https with a
// host, no user information, no fragment, a port (if any) from 1 to 65535; outside dev mode
// (Config.AllowLocalEndpoints) its host must not be localhost or an IP literal in a
// non-public range. Each refusal is KindInvalidArgument with a reason that names the field
// and the rule: CLAIMS_ENDPOINT_NOT_HTTPS, ISSUER_PRIVATE_ADDRESS, …
func (s *Service) checkEndpointURL(f urlField, raw string) error {
	field := f.name
	if raw == "" {
		return NewError(f.required, "%s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Hostname() == "" || u.Opaque != "" {
		return NewError(f.malformed, "%s must be an absolute https URL, got %q", field, raw)
	}
	if u.User != nil {
		return NewError(f.userinfo, "%s must not carry user information", field)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return NewError(f.fragment, "%s must not have a fragment", field)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return NewError(f.portInvalid, "%s must name a port from 1 to 65535, got %q", field, p)
		}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	local := s.cfg.AllowLocalEndpoints
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && local && publicaddr.IsLoopbackHost(host):
	default:
		return NewError(f.notHTTPS, "%s must use https, got %q", field, raw)
	}
	if local {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return NewError(f.privateAddress, "%s must not point at %s: it is the loopback interface of whoever connects (RFC 6761)", field, host)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if r, bad := publicaddr.NonPublic(a); bad {
			in := ""
			if r.Prefix.IsValid() {
				in = " in " + r.Prefix.String()
			}
			return NewError(f.privateAddress, "%s must not point at %s%s (%s): relying parties would fetch from their own network", field, a, in, r.What)
		}
		return nil
	}
	if numericHost(host) {
		return NewError(f.malformed, "%s host %q reads as an IP address in a form resolvers disagree on; write a dotted-quad IPv4 address or a host name", field, host)
	}
	return nil
}

// numericHost reports whether host, not a valid IP literal, still looks like an IPv4 address
// in one of the forms inet_aton accepts (127.1, 0x7f.0.0.1, 2130706433, 0177.0.0.1), which
// many resolvers turn into an address without asking DNS. No top-level domain is numeric.
func numericHost(host string) bool {
	labels := strings.Split(host, ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		_, err := strconv.ParseUint(cmp.Or(h, "0"), 16, 64)
		return err == nil
	}
	return strings.Trim(last, "0123456789") == ""
}
