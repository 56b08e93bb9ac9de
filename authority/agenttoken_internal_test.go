package authority

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

// TestAgentTokenCacheKey: a kept token is found only for its access token, its signing key
// and its agent; a token for another key (a rotation) or another agent (a transfer) misses
// and, once put, replaces the old one, so that the old key's or old agent's token never comes
// back.
func TestAgentTokenCacheKey(t *testing.T) {
	c := newAgentTokenCache(8)
	h1, h2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	c.put(h1[:], "k1", "https://alpha", "jwt-alpha-k1")

	for _, tc := range []struct {
		name       string
		hash       []byte
		kid, agent string
		want       string
	}{
		{"same access token, key and agent", h1[:], "k1", "https://alpha", "jwt-alpha-k1"},
		{"another access token", h2[:], "k1", "https://alpha", ""},
		{"another signing key", h1[:], "k2", "https://alpha", ""},
		{"another agent", h1[:], "k1", "https://beta", ""},
	} {
		got, ok := c.get(tc.hash, tc.kid, tc.agent)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}

	// A transfer: the token for the new agent takes the old one's place.
	c.put(h1[:], "k1", "https://beta", "jwt-beta-k1")
	if got, ok := c.get(h1[:], "k1", "https://alpha"); ok {
		t.Errorf("after the transfer the old agent's token %q is still kept", got)
	}
	if got, _ := c.get(h1[:], "k1", "https://beta"); got != "jwt-beta-k1" {
		t.Errorf("after the transfer: got %q, want the new agent's token", got)
	}
	// A rotation: likewise.
	c.put(h1[:], "k2", "https://beta", "jwt-beta-k2")
	if got, ok := c.get(h1[:], "k1", "https://beta"); ok {
		t.Errorf("after the rotation the old key's token %q is still kept", got)
	}
	if n := c.len(); n != 1 {
		t.Errorf("%d tokens kept for one access token, want 1", n)
	}
}

// TestAgentTokenCacheBound: filled beyond its size, the cache keeps size tokens, the most
// recently used ones.
func TestAgentTokenCacheBound(t *testing.T) {
	const size = 16
	c := newAgentTokenCache(size)
	hash := func(i int) []byte { h := sha256.Sum256(fmt.Appendf(nil, "token %d", i)); return h[:] }
	for i := range size {
		c.put(hash(i), "k", "a", fmt.Sprint(i))
	}
	// Token 0 is used again, so token 1 is now the least recently used.
	if _, ok := c.get(hash(0), "k", "a"); !ok {
		t.Fatal("token 0 is not kept")
	}
	for i := size; i < 3*size; i++ {
		c.put(hash(i), "k", "a", fmt.Sprint(i))
		if n := c.len(); n > size {
			t.Fatalf("after %d tokens %d are kept, more than %d", i+1, n, size)
		}
	}
	if n := c.len(); n != size {
		t.Errorf("%d tokens kept, want %d", n, size)
	}
	for i := 2 * size; i < 3*size; i++ {
		if got, ok := c.get(hash(i), "k", "a"); !ok || got != fmt.Sprint(i) {
			t.Errorf("recent token %d: got %q, %v", i, got, ok)
		}
	}
	for _, i := range []int{0, 1, size, 2*size - 1} {
		if got, ok := c.get(hash(i), "k", "a"); ok {
			t.Errorf("old token %d is still kept: %q", i, got)
		}
	}
}

// TestAgentTokenID: the jti is the same for the same access token and key, and differs for
// another access token or another key.
func TestAgentTokenID(t *testing.T) {
	h1, h2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	k1, k2 := []byte("key one"), []byte("key two")
	if agentTokenID(k1, h1[:]) != agentTokenID(k1, h1[:]) {
		t.Error("the jti of one access token changes")
	}
	if agentTokenID(k1, h1[:]) == agentTokenID(k1, h2[:]) {
		t.Error("two access tokens have the same jti")
	}
	if agentTokenID(k1, h1[:]) == agentTokenID(k2, h1[:]) {
		t.Error("two keys give the same jti")
	}
}

// TestAgentTokenCacheAnswer: an answer kept beside an agent token is found only with that
// token, the claims endpoint and the form (JSON, or signed by one key) it was made for, and
// goes when another token replaces the one it was made with.
func TestAgentTokenCacheAnswer(t *testing.T) {
	c := newAgentTokenCache(8)
	h1, h2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	if _, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", answerJSON); ok {
		t.Fatal("an answer for an access token without a kept token")
	}
	c.keepAnswer(h1[:], "jwt-1", "https://alpha/claims", answerJSON, []byte(`{"a":1}`))
	if _, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", answerJSON); ok {
		t.Fatal("an answer kept without its token")
	}
	c.put(h1[:], "k1", "https://alpha", "jwt-1")
	c.keepAnswer(h2[:], "jwt-1", "https://alpha/claims", answerJSON, []byte(`{"b":2}`))
	c.keepAnswer(h1[:], "jwt-other", "https://alpha/claims", answerJSON, []byte(`{"c":3}`))
	if _, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", answerJSON); ok {
		t.Fatal("an answer kept for another access token or another agent token")
	}
	c.keepAnswer(h1[:], "jwt-1", "https://alpha/claims", answerJSON, []byte(`{"a":1}`))
	for _, tc := range []struct {
		name, jwt, endpoint, want string
	}{
		{"same token and endpoint", "jwt-1", "https://alpha/claims", `{"a":1}`},
		{"another claims endpoint", "jwt-1", "https://alpha/claims2", ""},
		{"another agent token", "jwt-2", "https://alpha/claims", ""},
	} {
		got, ok := c.answer(h1[:], tc.jwt, tc.endpoint, answerJSON)
		if string(got) != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: answer %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", "kid-1"); ok {
		t.Fatal("a JSON answer given for a signed one")
	}
	c.keepAnswer(h1[:], "jwt-1", "https://alpha/claims", "kid-1", []byte("signed"))
	if got, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", "kid-1"); !ok || string(got) != "signed" {
		t.Fatalf("the signed answer: %q, %v", got, ok)
	}
	if _, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", "kid-2"); ok {
		t.Fatal("an answer signed by one key given for another")
	}
	if jwt, ok := c.get(h1[:], "k1", "https://alpha"); !ok || jwt != "jwt-1" {
		t.Fatalf("the token beside the answer: %q, %v", jwt, ok)
	}
	c.put(h1[:], "k2", "https://alpha", "jwt-2")
	if _, ok := c.answer(h1[:], "jwt-1", "https://alpha/claims", answerJSON); ok {
		t.Fatal("the answer outlived the token it was made with")
	}
}
