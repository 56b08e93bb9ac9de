package claims

import (
	"context"
	"strings"
)

// Static is a Source held in memory: each identifier's claims by name. Identifiers are
// compared case-insensitively, as DNS names are. A Static must not change while it serves.
type Static map[string]map[string]any

// Claims returns the claims of identifier among names.
func (s Static) Claims(_ context.Context, identifier string, names []string) (map[string]any, error) {
	held, ok := s[identifier]
	if !ok {
		for id, c := range s {
			if strings.EqualFold(strings.TrimSuffix(id, "."), strings.TrimSuffix(identifier, ".")) {
				held, ok = c, true
				break
			}
		}
	}
	if !ok {
		return nil, ErrUnknownIdentifier
	}
	out := make(map[string]any, len(names))
	for _, n := range names {
		if v, found := held[n]; found {
			out[n] = v
		}
	}
	return out, nil
}
