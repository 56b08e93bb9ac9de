package registry

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Page sizes, as AIP-158: 0 means the default, more than the maximum is capped.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// pageSize applies the default and the cap, refusing negative sizes.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, NewError(ReasonInvalidPageSize, "page_size must not be negative, got %d", n)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}

// A page token is opaque to clients: base64url of "<kind>:<key>", where key is the last
// key of the previous page. The kind stops a token of one listing from being used on another.

func encodePageToken(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + key))
}

func decodePageToken(kind, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", NewError(ReasonInvalidPageToken, "page_token is not one this listing returned")
	}
	k, key, ok := strings.Cut(string(b), ":")
	if !ok || k != kind || key == "" {
		return "", NewError(ReasonInvalidPageToken, "page_token is not one this listing returned")
	}
	return key, nil
}

func decodeIntPageToken(kind, token string) (int64, error) {
	key, err := decodePageToken(kind, token)
	if err != nil || key == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n < 0 {
		return 0, NewError(ReasonInvalidPageToken, "page_token is not one this listing returned")
	}
	return n, nil
}

// trimPage cuts a listing fetched with one item more than the page size down to the page,
// and returns the token of the next page ("" on the last one).
func trimPage[T any](items []T, n int, kind string, key func(T) string) ([]T, string) {
	if len(items) <= n {
		return items, ""
	}
	items = items[:n]
	return items, encodePageToken(kind, key(items[n-1]))
}
