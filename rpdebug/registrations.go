package rpdebug

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Registration is the relying party's client at one authority, as the authority's dynamic
// registration answered.
type Registration struct {
	Issuer          string `json:"issuer"`
	ClientID        string `json:"client_id"`
	ClientSecret    string `json:"client_secret,omitempty"`
	SecretExpiresAt int64  `json:"client_secret_expires_at,omitempty"`
	// Profile is the metadata it was registered with that a login's options depend on.
	Profile string `json:"profile"`
	// DecryptionKey is the private key of the encrypted responses it registered, if any.
	DecryptionKey *jose.JSONWebKey `json:"decryption_key,omitempty"`
	// Response is the registration response as received.
	Response json.RawMessage `json:"response"`
	Created  time.Time       `json:"created"`
}

// expired reports whether the client secret has expired at now.
func (r Registration) expired(now time.Time) bool {
	return r.SecretExpiresAt != 0 && now.Unix() >= r.SecretExpiresAt
}

// registrations keeps the clients registered so far, by issuer and profile; with a path,
// in a JSON file (mode 0600: it holds client secrets), so a restart reuses them.
type registrations struct {
	path string

	mu sync.Mutex
	m  map[string]Registration
}

func loadRegistrations(path string) (*registrations, error) {
	r := &registrations{path: path, m: map[string]Registration{}}
	if path == "" {
		return r, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading registrations: %w", err)
	}
	if err := json.Unmarshal(b, &r.m); err != nil {
		return nil, fmt.Errorf("reading registrations from %s: %w", path, err)
	}
	return r, nil
}

func registrationKey(issuer, profile string) string { return issuer + " " + profile }

func (r *registrations) get(issuer, profile string) (Registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.m[registrationKey(issuer, profile)]
	return reg, ok
}

func (r *registrations) put(reg Registration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[registrationKey(reg.Issuer, reg.Profile)] = reg
	if r.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(r.m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), ".registrations-*")
	if err != nil {
		return fmt.Errorf("saving registrations: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("saving registrations: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving registrations: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.path); err != nil {
		return fmt.Errorf("saving registrations: %w", err)
	}
	return nil
}
