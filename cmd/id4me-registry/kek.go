package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/cmdline"
)

// kekFlags are the key-encryption key files of serve and the keys commands.
type kekFlags struct {
	file, oldFile string
}

func (k *kekFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.file, "key-encryption-key-file", "", "file holding the key-encryption key that seals the authority's private signing keys in the database: 32 random bytes in base64 (id4me-registry keys generate-kek)")
	fs.StringVar(&k.oldFile, "old-key-encryption-key-file", "", "file holding the key-encryption key being replaced: keys sealed with it still open while keys rewrap moves them")
}

// parseWithKEK registers the key-encryption key flags on fs, parses args and reads the keys
// the flags name: what every keys command that opens signing keys does first.
func parseWithKEK(fs *cmdline.Flags, args []string) (kek, old *authority.KeyEncryptionKey, err error) {
	var k kekFlags
	k.register(fs.FlagSet)
	if _, err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return k.load()
}

// load reads the key-encryption keys; nil for a file not given.
func (k kekFlags) load() (kek, old *authority.KeyEncryptionKey, err error) {
	if k.oldFile != "" && k.file == "" {
		return nil, nil, errors.New("--old-key-encryption-key-file goes with --key-encryption-key-file, the key that replaces it")
	}
	if kek, err = readKEK("--key-encryption-key-file", k.file); err != nil {
		return nil, nil, err
	}
	if old, err = readKEK("--old-key-encryption-key-file", k.oldFile); err != nil {
		return nil, nil, err
	}
	if old != nil && old.ID() == kek.ID() {
		return nil, nil, errors.New("--old-key-encryption-key-file holds the same key as --key-encryption-key-file")
	}
	return kek, old, nil
}

func readKEK(flagName, path string) (*authority.KeyEncryptionKey, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	k, err := authority.ParseKeyEncryptionKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	return k, nil
}

// keySetError says what to do when the signing keys did not load because of their seal.
func keySetError(err error) error {
	if errors.Is(err, authority.ErrSealed) {
		return fmt.Errorf("signing keys: %w (give the key-encryption key they are sealed with in --key-encryption-key-file, and during a rewrap the one it replaces in --old-key-encryption-key-file)", err)
	}
	return fmt.Errorf("signing keys: %w", err)
}
