package authority

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams is the cost of argon2id (RFC 9106): memory in KiB, passes, lanes.
type PasswordParams struct {
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultPasswordParams are OWASP's minimum recommendation for argon2id.
var DefaultPasswordParams = PasswordParams{Memory: 19456, Time: 2, Threads: 1}

func (p PasswordParams) check() error {
	if p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 {
		return fmt.Errorf("authority: argon2id parameters %+v are too small", p)
	}
	return nil
}

const (
	saltBytes = 16
	keyBytes  = 32
	// MinPasswordLength and MaxPasswordLength bound a holder's password, in characters.
	MinPasswordLength = 12
	MaxPasswordLength = 256
)

var b64 = base64.RawStdEncoding

// hashPassword returns the argon2id hash of password in PHC string form:
// $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func hashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyBytes)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("authority: malformed password hash")

// checkPassword reports whether password matches a hash made by hashPassword, with the
// parameters the hash names.
func checkPassword(password, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var p PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.check() != nil {
		return false, errBadHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// passwordRules lists what a new password must be, as the credential page shows it.
var passwordRules = []string{
	fmt.Sprintf("at least %d characters (a few unrelated words make a good one)", MinPasswordLength),
	fmt.Sprintf("at most %d characters", MaxPasswordLength),
	"not your identifier, and not one character repeated",
}

// checkNewPassword says what is wrong with a new password, or "" when it is acceptable.
func checkNewPassword(password, confirm, identifier string) string {
	n := utf8.RuneCountInString(password)
	switch {
	case password != confirm:
		return "The two passwords differ."
	case n < MinPasswordLength:
		return fmt.Sprintf("The password is too short: %d characters, at least %d are needed.", n, MinPasswordLength)
	case n > MaxPasswordLength:
		return fmt.Sprintf("The password is too long: at most %d characters.", MaxPasswordLength)
	case strings.Contains(strings.ToLower(password), strings.ToLower(identifier)):
		return "The password must not contain your identifier."
	case strings.Count(password, password[:1]) == len(password):
		return "The password must not be one character repeated."
	}
	return ""
}

// checkPassword verifies a password, holding one of the hash slots.
func (a *Authority) checkPassword(ctx context.Context, password, hash string) (ok bool, err error) {
	err = a.withHashSlot(ctx, func() { ok, err = checkPassword(password, hash) })
	return ok, err
}

// hashNewPassword hashes a password with the configured cost, holding one of the hash slots.
func (a *Authority) hashNewPassword(ctx context.Context, password string) (hash string, err error) {
	err = a.withHashSlot(ctx, func() { hash, err = hashPassword(password, a.cfg.Password) })
	return hash, err
}

// withHashSlot runs fn holding one of the hash slots: each argon2id hash takes
// Password.Memory KiB, so only so many run at once.
func (a *Authority) withHashSlot(ctx context.Context, fn func()) error {
	select {
	case a.hashSlot <- struct{}{}:
		defer func() { <-a.hashSlot }()
	case <-ctx.Done():
		return ctx.Err()
	}
	fn()
	return nil
}
