package authority

import (
	"container/list"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"sync"

	"github.com/go-jose/go-jose/v4/json"
)

// agentTokenCacheSize is how many signed agent tokens an Authority keeps, one per RP access
// token (about 1 KB each with RS256, about twice that once its JSON userinfo answer is kept
// beside it).
const agentTokenCacheSize = 4096

// agentToken is the access token the sponsoring agent receives (DESIGN, DENIC's layout).
type agentToken struct {
	Issuer     string   `json:"iss"`
	Subject    string   `json:"sub"`
	Audience   string   `json:"aud"`
	Identifier string   `json:"id4me.identifier"`
	Claims     []string `json:"clm"`
	Scope      []string `json:"scope"`
	ClientID   string   `json:"client_id"`
	IssuedAt   int64    `json:"iat"`
	Expiry     int64    `json:"exp"`
	ID         string   `json:"jti"`
}

// agentTokenFor returns the agent token that goes with the RP access token at when agent
// (its issuer) sponsors the identifier: one token per access token, not one per userinfo
// call. Its claims follow from at alone: iat and exp are the access token's, jti a keyed
// hash of its hash (agentTokenID). RS256 signatures are deterministic, so every instance
// sharing the store makes the same bytes; ES256 ones are not, and each instance then has its
// own. The signed token is kept (agentTokenCache) for the key that signs now and for agent:
// a rotation or a transfer makes a new one. at must be valid: the caller checked that it is
// neither expired nor revoked.
func (a *Authority) agentTokenFor(at AccessToken, agent string) (string, error) {
	key, err := a.keys.current(a.cfg.AgentTokenAlg)
	if err != nil {
		return "", err
	}
	if jwt, ok := a.agentTokens.get(at.TokenHash, key.ID, agent); ok {
		return jwt, nil
	}
	b, err := json.Marshal(agentToken{
		Issuer: a.issuer, Subject: at.Subject, Audience: agent, Identifier: at.Identifier,
		Claims: at.Claims, Scope: at.Scopes, ClientID: at.ClientID,
		IssuedAt: at.CreateTime.Unix(), Expiry: at.ExpireTime.Unix(), ID: agentTokenID(key.idKey, at.TokenHash),
	})
	if err != nil {
		return "", err
	}
	jwt, err := key.sign(b, "JWT")
	if err != nil {
		return "", err
	}
	a.agentTokens.put(at.TokenHash, key.ID, agent, jwt)
	return jwt, nil
}

// agentTokenID is the jti of the agent token for the access token whose hash is tokenHash:
// HMAC-SHA-256 keyed with the signing key's idKey, 128 bits of it in base64url, like
// randomID. It tells nothing of the access token to whoever lacks the key.
func agentTokenID(idKey, tokenHash []byte) string {
	m := hmac.New(sha256.New, idKey)
	m.Write(tokenHash)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// agentTokenCache keeps signed agent tokens, the most recently used first, at most size of
// them: one per access token (by its hash), for one signing key and one agent. A token for
// another key or agent replaces it. It is safe for concurrent use.
type agentTokenCache struct {
	size int

	mu     sync.Mutex
	recent *list.List // of *cachedAgentToken, most recently used first
	byHash map[string]*list.Element
}

type cachedAgentToken struct {
	tokenHash  string
	kid, agent string
	jwt        string
	// endpoint, form and answer are the userinfo answer made with jwt for the claims
	// endpoint, in form (JSON, or signed by a key), once made (keepAnswer).
	endpoint, form string
	answer         []byte
}

func newAgentTokenCache(size int) *agentTokenCache {
	return &agentTokenCache{size: size, recent: list.New(), byHash: make(map[string]*list.Element)}
}

// get returns the token kept for the access token with tokenHash, if it was signed with kid
// for agent.
func (c *agentTokenCache) get(tokenHash []byte, kid, agent string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byHash[string(tokenHash)]
	if !ok {
		return "", false
	}
	t := el.Value.(*cachedAgentToken)
	if t.kid != kid || t.agent != agent {
		return "", false
	}
	c.recent.MoveToFront(el)
	return t.jwt, true
}

// put keeps jwt for the access token with tokenHash, signed with kid for agent, in place of
// any other token for that access token, and drops the least recently used tokens beyond
// size.
func (c *agentTokenCache) put(tokenHash []byte, kid, agent, jwt string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &cachedAgentToken{tokenHash: string(tokenHash), kid: kid, agent: agent, jwt: jwt}
	if el, ok := c.byHash[t.tokenHash]; ok {
		el.Value = t
		c.recent.MoveToFront(el)
		return
	}
	c.byHash[t.tokenHash] = c.recent.PushFront(t)
	for c.recent.Len() > c.size {
		last := c.recent.Back()
		c.recent.Remove(last)
		delete(c.byHash, last.Value.(*cachedAgentToken).tokenHash)
	}
}

// answer returns the userinfo answer kept for the access token with tokenHash, if it was
// made with the agent token jwt for the claims endpoint, in form.
func (c *agentTokenCache) answer(tokenHash []byte, jwt, endpoint, form string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byHash[string(tokenHash)]
	if !ok {
		return nil, false
	}
	t := el.Value.(*cachedAgentToken)
	if t.answer == nil || t.jwt != jwt || t.endpoint != endpoint || t.form != form {
		return nil, false
	}
	return t.answer, true
}

// keepAnswer keeps the userinfo answer made with the agent token jwt for the claims
// endpoint, in form, beside that token, if it is still the one kept for the access token
// with tokenHash. answer must not be changed afterwards.
func (c *agentTokenCache) keepAnswer(tokenHash []byte, jwt, endpoint, form string, answer []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byHash[string(tokenHash)]
	if !ok {
		return
	}
	if t := el.Value.(*cachedAgentToken); t.jwt == jwt {
		t.endpoint, t.form, t.answer = endpoint, form, answer
	}
}

// len returns how many tokens are kept.
func (c *agentTokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recent.Len()
}
