package authority

import (
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	p := PasswordParams{Memory: 256, Time: 1, Threads: 1}
	h, err := hashPassword("correct horse battery staple", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=256,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters in PHC form", h)
	}
	h2, _ := hashPassword("correct horse battery staple", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		password string
		hash     string
		ok       bool
	}{
		{"correct horse battery staple", h, true},
		{"correct horse battery staplE", h, false},
		{"", h, false},
	} {
		ok, err := checkPassword(tc.password, tc.hash)
		if err != nil || ok != tc.ok {
			t.Errorf("checkPassword(%q) = %v, %v; want %v", tc.password, ok, err, tc.ok)
		}
	}
	// A hash made with other parameters is checked with those.
	strong, _ := hashPassword("pw", DefaultPasswordParams)
	if ok, err := checkPassword("pw", strong); !ok || err != nil {
		t.Fatalf("default-parameter hash: %v %v", ok, err)
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=256,t=1,p=1$AAAA$AAAA", "$argon2id$v=18$m=256,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=256,t=1,p=1$!!$AAAA"} {
		if _, err := checkPassword("x", bad); err == nil {
			t.Errorf("checkPassword accepted the malformed hash %q", bad)
		}
	}
}

func TestCheckNewPassword(t *testing.T) {
	for _, tc := range []struct {
		password, confirm string
		want              string
	}{
		{"a long enough passphrase", "a long enough passphrase", ""},
		{"a long enough passphrase", "a long enough passphrasf", "differ"},
		{"short", "short", "too short"},
		{strings.Repeat("x", 300), strings.Repeat("x", 300), "too long"},
		{"my alice.example id forever", "my alice.example id forever", "identifier"},
		{"aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", "repeated"},
	} {
		got := checkNewPassword(tc.password, tc.confirm, "alice.example")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkNewPassword(%q) = %q, want %q", tc.password, got, tc.want)
		}
	}
}

func TestSubject(t *testing.T) {
	a := subject("seed-1", SubjectPairwise, "rp.example")
	if len(a) != 64 {
		t.Fatalf("subject %q has %d characters, want 64", a, len(a))
	}
	if a != subject("seed-1", SubjectPairwise, "rp.example") {
		t.Fatal("subject is not stable")
	}
	for name, other := range map[string]string{
		"another sector":   subject("seed-1", SubjectPairwise, "other.example"),
		"another identity": subject("seed-2", SubjectPairwise, "rp.example"),
		"public":           subject("seed-1", SubjectPublic, "rp.example"),
	} {
		if other == a {
			t.Errorf("%s gives the same subject", name)
		}
	}
	if subject("seed-1", SubjectPublic, "a") != subject("seed-1", SubjectPublic, "b") {
		t.Error("public subjects differ between sectors")
	}
}

func TestPKCE(t *testing.T) {
	// RFC 7636 appendix B.
	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	if !pkceMatches(verifier, challenge) {
		t.Fatal("the RFC 7636 example does not match")
	}
	if pkceMatches(verifier+"x", challenge) || pkceMatches("short", challenge) {
		t.Fatal("a wrong verifier matches")
	}
}
