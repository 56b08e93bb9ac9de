package oidctest

import (
	"net/http"

	"github.com/coreos/go-oidc/v3/oidc"
)

// WithClient returns a copy of the RP that makes its token, userinfo and claims-source
// calls through client, for instance one keep-alive connection per goroutine in a
// benchmark. The registration and the provider (with its cached JWKS, fetched through the
// original client) are shared.
func (rp *RP) WithClient(client *http.Client) *RP {
	c := *rp
	c.client = client
	c.ctx = oidc.ClientContext(rp.ctx, client)
	return &c
}
