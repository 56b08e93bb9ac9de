package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/providers/dns/exec"
	"github.com/go-acme/lego/v4/providers/dns/httpreq"
	"github.com/go-acme/lego/v4/providers/dns/rfc2136"
)

// dnsProviders are the DNS providers `register` and `transfer` can publish the challenge
// record with (--dns-provider). Each lego provider is configured the lego way, by its own
// environment variables (RFC2136_NAMESERVER, EXEC_PATH, HTTPREQ_ENDPOINT, …); any other lego
// provider is one more line here.
var dnsProviders = map[string]func() (challenge.Provider, error){
	"exec":    legoProvider(exec.NewDNSProvider),
	"httpreq": legoProvider(httpreq.NewDNSProvider),
	"manual":  func() (challenge.Provider, error) { return manualProvider{in: os.Stdin, out: os.Stderr}, nil },
	"rfc2136": legoProvider(rfc2136.NewDNSProvider),
}

// legoProvider adapts a lego provider's constructor to the table above.
func legoProvider[P challenge.Provider](newProvider func() (P, error)) func() (challenge.Provider, error) {
	return func() (challenge.Provider, error) {
		p, err := newProvider()
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// dnsProviderNames lists the providers, sorted.
func dnsProviderNames() []string {
	return slices.Sorted(maps.Keys(dnsProviders))
}

// newDNSProvider makes the provider called name.
func newDNSProvider(name string) (challenge.Provider, error) {
	if name == "" {
		return nil, fmt.Errorf("--dns-provider is required: one of %s", strings.Join(dnsProviderNames(), ", "))
	}
	newProvider, ok := dnsProviders[name]
	if !ok {
		return nil, fmt.Errorf("unknown --dns-provider %q: use one of %s", name, strings.Join(dnsProviderNames(), ", "))
	}
	p, err := newProvider()
	if err != nil {
		return nil, fmt.Errorf("DNS provider %s: %w", name, err)
	}
	return p, nil
}

// manualProvider asks the person at the terminal to publish the record and waits for Enter.
// lego's own manual provider writes to standard output, which --json keeps for JSON, and looks
// the zone up through the system resolver; this one only prompts, on standard error.
type manualProvider struct {
	in  io.Reader
	out io.Writer
}

func (m manualProvider) Present(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	fmt.Fprintf(m.out, "Publish this TXT record on every nameserver of the zone, then press Enter:\n  %s %d IN TXT %q\n",
		info.EffectiveFQDN, dns01.DefaultTTL, info.Value)
	if _, err := bufio.NewReader(m.in).ReadString('\n'); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("manual: standard input ended before Enter was pressed")
		}
		return fmt.Errorf("manual: %w", err)
	}
	return nil
}

func (m manualProvider) CleanUp(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	fmt.Fprintf(m.out, "The TXT record can be removed now:\n  %s IN TXT %q\n", info.EffectiveFQDN, info.Value)
	return nil
}
