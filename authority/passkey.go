package authority

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Passkey is a holder's WebAuthn credential (a passkey or a security key).
type Passkey struct {
	// CredentialID is the credential's ID, as the authenticator gave it.
	CredentialID []byte
	IdentityID   string
	// Identifier is the identifier the holder had when the passkey was added: a login with
	// the passkey resolves it (an identity keeps its identifier).
	Identifier string
	// Name is the holder's name for it ("Laptop", "Blue key").
	Name string
	// Credential is the WebAuthn credential record as JSON (webauthn.Credential): public key,
	// sign count, flags, transports.
	Credential []byte
	// LinkHash is the token hash of the credential link the passkey waits for; nil once it
	// works.
	LinkHash []byte
	// SessionIDHash, when a passkey is added from the account page, is the IDHash of the
	// session that adds it: it is stored only while that session lasts, so that new
	// credentials set meanwhile (which end every session) cannot miss it. Not stored.
	SessionIDHash []byte
	CreateTime    time.Time
	// UseTime is when it last logged in; zero: never.
	UseTime time.Time
}

// Ceremony is a WebAuthn registration or authentication under way: the challenge the
// browser must sign, bound to the browser that was given it.
type Ceremony struct {
	// IDHash is SHA-256 of the ceremony's ID, which the page carries.
	IDHash []byte
	// BrowserHash is SHA-256 of the browser cookie it was made for.
	BrowserHash []byte
	// IdentityID is the identity it is for; empty for a discoverable login.
	IdentityID string
	// Purpose says what the ceremony may finish: ceremonyLogin, ceremonySecondFactor, or
	// an enrolment (ceremonyEnrol…).
	Purpose string
	// Session is webauthn.SessionData as JSON.
	Session    []byte
	ExpireTime time.Time
}

// Ceremony purposes.
const (
	ceremonyLogin        = "login"
	ceremonySecondFactor = "second-factor"
	// ceremonyEnrolLink is followed by the hex of the credential link's token hash.
	ceremonyEnrolLink    = "enrol-link:"
	ceremonyEnrolAccount = "enrol-account"
)

// ceremonyTTL is how long a page that offers a passkey can wait for it.
const ceremonyTTL = 10 * time.Minute

// maxPasskeys bounds the passkeys of one holder; maxPasskeyName the length of a name.
const (
	maxPasskeys    = 20
	maxPasskeyName = 60
)

// newWebAuthn configures WebAuthn for the issuer: the relying-party ID is the authority's
// host (without port), the only origin the issuer's.
func newWebAuthn(issuer string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	origin := u.Scheme + "://" + u.Host
	return webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: "ID4me " + u.Hostname(),
		RPOrigins:     []string{origin},
		// Discoverable credentials (passkeys) that verify the user where they can.
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationPreferred,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
		},
	})
}

// passkeyUser is an identity as WebAuthn sees it: its user handle is the identity's ID, which
// is opaque and never reused.
type passkeyUser struct {
	identityID string
	identifier string
	creds      []webauthn.Credential
}

func (u passkeyUser) WebAuthnID() []byte                         { return []byte(u.identityID) }
func (u passkeyUser) WebAuthnName() string                       { return u.identifier }
func (u passkeyUser) WebAuthnDisplayName() string                { return u.identifier }
func (u passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// decodeCredentials returns the WebAuthn credential records of passkeys.
func decodeCredentials(ps []Passkey) ([]webauthn.Credential, error) {
	out := make([]webauthn.Credential, 0, len(ps))
	for _, p := range ps {
		var c webauthn.Credential
		if err := json.Unmarshal(p.Credential, &c); err != nil {
			return nil, fmt.Errorf("authority: passkey record: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// passkeyOffer is what a page needs to run a WebAuthn ceremony: the ceremony's ID, for the
// form, and the options for navigator.credentials, as JSON.
type passkeyOffer struct {
	Ceremony string
	Options  string
}

// beginCeremony stores a ceremony for browser and returns the page's offer.
func (a *Authority) beginCeremony(ctx context.Context, browser, identityID, purpose string, options any, session *webauthn.SessionData) (*passkeyOffer, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, err
	}
	sess, err := json.Marshal(session)
	if err != nil {
		return nil, err
	}
	id := randomToken()
	c := Ceremony{IDHash: hashToken(id), BrowserHash: hashToken(browser), IdentityID: identityID, Purpose: purpose, Session: sess, ExpireTime: a.now().Add(ceremonyTTL)}
	if err := a.store.CreateCeremony(ctx, c); err != nil {
		return nil, err
	}
	return &passkeyOffer{Ceremony: id, Options: string(opts)}, nil
}

// errCeremony says a posted ceremony is unknown, used, expired, of another browser or for
// something else.
var errCeremony = errors.New("the passkey request has expired or was used already")

// takeCeremony takes the ceremony a form names and checks it belongs to browser, has not
// expired and is for purpose; an error of the store is returned as it is.
func (a *Authority) takeCeremony(ctx context.Context, id, browser, purpose string) (Ceremony, webauthn.SessionData, error) {
	var sess webauthn.SessionData
	if id == "" || len(id) > 64 {
		return Ceremony{}, sess, errCeremony
	}
	c, err := a.store.TakeCeremony(ctx, hashToken(id))
	switch {
	case errors.Is(err, ErrNotFound):
		return c, sess, errCeremony
	case err != nil:
		return c, sess, err
	case !hmac.Equal(c.BrowserHash, hashToken(browser)) || c.Purpose != purpose || !a.now().Before(c.ExpireTime):
		return c, sess, errCeremony
	}
	if err := json.Unmarshal(c.Session, &sess); err != nil {
		return c, sess, fmt.Errorf("authority: ceremony session: %w", err)
	}
	return c, sess, nil
}

// beginEnrolment offers the creation of a passkey for an identity that has the passkeys
// existing (which the authenticator is asked not to register again).
func (a *Authority) beginEnrolment(ctx context.Context, browser, identityID, identifier, purpose string, existing []Passkey) (*passkeyOffer, error) {
	if a.webauthn == nil {
		return nil, nil
	}
	creds, err := decodeCredentials(existing)
	if err != nil {
		return nil, err
	}
	u := passkeyUser{identityID: identityID, identifier: identifier, creds: creds}
	opts, sess, err := a.webauthn.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(creds).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("authority: beginning a passkey registration: %w", err)
	}
	return a.beginCeremony(ctx, browser, identityID, purpose, opts, sess)
}

// finishEnrolment checks the authenticator's answer to an enrolment ceremony and returns
// the passkey it makes (not stored yet). msg, when not empty, says what is wrong to the
// holder; err is a failure of the authority.
func (a *Authority) finishEnrolment(ctx context.Context, browser, purpose, ceremony, response, name, identityID, identifier string, existing []Passkey) (p Passkey, msg string, err error) {
	if a.webauthn == nil {
		return p, "Passkeys are not available here.", nil
	}
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		name = "Passkey " + a.now().Format("2006-01-02")
	case utf8.RuneCountInString(name) > maxPasskeyName || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' }):
		return p, fmt.Sprintf("Give the passkey a name of at most %d characters.", maxPasskeyName), nil
	}
	if len(existing) >= maxPasskeys {
		return p, fmt.Sprintf("You have %d passkeys, the most there can be. Remove one first.", maxPasskeys), nil
	}
	c, sess, err := a.takeCeremony(ctx, ceremony, browser, purpose)
	if errors.Is(err, errCeremony) || err == nil && c.IdentityID != identityID {
		return p, "The passkey request has expired. Try again.", nil
	}
	if err != nil {
		return p, "", err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(response))
	if err != nil {
		return p, "Your browser's answer could not be read. Try again.", nil
	}
	creds, err := decodeCredentials(existing)
	if err != nil {
		return p, "", err
	}
	cred, err := a.webauthn.CreateCredential(passkeyUser{identityID: identityID, identifier: identifier, creds: creds}, sess, parsed)
	if err != nil {
		a.log.InfoContext(ctx, "passkey registration refused", "identifier", identifier, "err", err)
		return p, "The passkey could not be verified. Try again.", nil
	}
	if slices.ContainsFunc(existing, func(e Passkey) bool { return string(e.CredentialID) == string(cred.ID) }) {
		return p, "This passkey is registered already.", nil
	}
	record, err := json.Marshal(cred)
	if err != nil {
		return p, "", err
	}
	return Passkey{CredentialID: cred.ID, IdentityID: identityID, Identifier: identifier, Name: name, Credential: record, CreateTime: a.now()}, "", nil
}

// beginLoginOffer offers a login with a passkey: discoverable (any passkey of this
// authority, identityID empty) or, as a second factor, one of the passkeys of identityID.
func (a *Authority) beginLoginOffer(ctx context.Context, browser, identityID string, passkeys []Passkey) (*passkeyOffer, error) {
	if a.webauthn == nil {
		return nil, nil
	}
	if identityID == "" {
		// A passkey alone is the whole login, so the authenticator must verify its user (PIN,
		// biometrics, screen lock): possession alone would be one factor, weaker than the
		// password it replaces. go-webauthn refuses an assertion without the UV flag then.
		opts, sess, err := a.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			return nil, fmt.Errorf("authority: beginning a passkey login: %w", err)
		}
		return a.beginCeremony(ctx, browser, "", ceremonyLogin, opts, sess)
	}
	creds, err := decodeCredentials(passkeys)
	if err != nil {
		return nil, err
	}
	opts, sess, err := a.webauthn.BeginLogin(passkeyUser{identityID: identityID, creds: creds}, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("authority: beginning a passkey login: %w", err)
	}
	return a.beginCeremony(ctx, browser, identityID, ceremonySecondFactor, opts, sess)
}

// passkeyLogin is a login checked with a passkey.
type passkeyLogin struct {
	passkey Passkey
	// amr are the methods the assertion proves (passkeyAMR).
	amr []string
}

// errPasskeyRefused says an assertion does not prove what it claims: unknown passkey,
// another identity's, a bad signature, a replayed counter.
var errPasskeyRefused = errors.New("the passkey was refused")

// finishLogin checks the authenticator's answer to a login ceremony c. For a discoverable
// login the passkey names its identity; otherwise it must be one of c.IdentityID's.
func (a *Authority) finishLogin(ctx context.Context, c Ceremony, sess webauthn.SessionData, response string) (passkeyLogin, error) {
	var out passkeyLogin
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(response))
	if err != nil {
		return out, fmt.Errorf("%w: %w", errPasskeyRefused, err)
	}
	p, err := a.store.GetPasskey(ctx, parsed.RawID)
	switch {
	case errors.Is(err, ErrNotFound):
		return out, fmt.Errorf("%w: unknown credential", errPasskeyRefused)
	case err != nil:
		return out, err
	case c.IdentityID != "" && p.IdentityID != c.IdentityID:
		return out, fmt.Errorf("%w: a passkey of another identity", errPasskeyRefused)
	}
	creds, err := decodeCredentials([]Passkey{p})
	if err != nil {
		return out, err
	}
	user := passkeyUser{identityID: p.IdentityID, identifier: p.Identifier, creds: creds}
	var cred *webauthn.Credential
	if c.IdentityID == "" {
		_, cred, err = a.webauthn.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			if string(userHandle) != p.IdentityID {
				return nil, fmt.Errorf("the user handle is not the passkey's identity")
			}
			return user, nil
		}, sess, parsed)
	} else {
		cred, err = a.webauthn.ValidateLogin(user, sess, parsed)
	}
	if err != nil {
		return out, fmt.Errorf("%w: %w", errPasskeyRefused, err)
	}
	if cred.Authenticator.CloneWarning {
		return out, fmt.Errorf("%w: its signature counter went back (a cloned authenticator?)", errPasskeyRefused)
	}
	record, err := json.Marshal(cred)
	if err != nil {
		return out, err
	}
	if err := a.store.UsePasskey(ctx, p.CredentialID, p.Credential, record, a.now()); errors.Is(err, ErrNotFound) {
		return out, fmt.Errorf("%w: removed meanwhile", errPasskeyRefused)
	} else if errors.Is(err, ErrConflict) {
		return out, fmt.Errorf("%w: used by another login meanwhile", errPasskeyRefused)
	} else if err != nil {
		return out, err
	}
	return passkeyLogin{passkey: p, amr: passkeyAMR(*cred, parsed.Response.AuthenticatorData.Flags.HasUserVerified())}, nil
}

// passkeyAMR are the authentication methods (RFC 8176) a passkey login proves: "hwk" for a
// key bound to its device (not backup eligible: a security key or a platform's secure
// element), "swk" for one that may be synced between devices; with user verification also
// "pin" on a roaming authenticator (security keys verify with a PIN) or "user" on the
// platform's (which verifies with the screen lock or biometrics).
func passkeyAMR(c webauthn.Credential, userVerified bool) []string {
	amr := []string{"swk"}
	if !c.Flags.BackupEligible {
		amr = []string{"hwk"}
	}
	if userVerified {
		if c.Authenticator.Attachment == protocol.CrossPlatform {
			amr = append(amr, "pin")
		} else {
			amr = append(amr, "user")
		}
	}
	return amr
}

// Authentication context classes (acr). phr is OpenID Connect Extended Authentication
// Profile ACR Values 1.0's phishing-resistant class; the others are the authority's own. Its
// phrh, a key bound to hardware, is not offered: the authority asks for no attestation, so
// that a key is not backup eligible (amr "hwk") is the authenticator's word alone.
const (
	acrPassword = "urn:id4me:acr:pwd"
	acrMFA      = "urn:id4me:acr:mfa"
	acrPhR      = "phr"
)

// acrValues are the supported classes, weakest first: a login of one class satisfies a
// request for it or any weaker one.
var acrValues = []string{acrPassword, acrMFA, acrPhR}

// acrOf is the class a login with the methods amr reached.
func acrOf(amr []string) string {
	switch {
	case slices.Contains(amr, "hwk"), slices.Contains(amr, "swk"):
		return acrPhR
	case slices.Contains(amr, "mfa"):
		return acrMFA
	}
	return acrPassword
}

// parseACRValues keeps the classes of acr_values the authority knows, in the order asked.
func parseACRValues(raw string) []string {
	var out []string
	for _, v := range strings.Fields(raw) {
		if slices.Contains(acrValues, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// acrSatisfied reports whether a login with the methods amr satisfies the classes a request
// asked for (none: any login): it must reach at least the weakest of them.
func (p AuthParams) acrSatisfied(amr []string) bool {
	if len(p.ACRValues) == 0 {
		return true
	}
	got := slices.Index(acrValues, acrOf(amr))
	for _, v := range p.ACRValues {
		if got >= slices.Index(acrValues, v) {
			return true
		}
	}
	return false
}

// wantsPasskey reports whether only a passkey can satisfy the request's acr_values.
func (p AuthParams) wantsPasskey() bool {
	return len(p.ACRValues) > 0 && !p.acrSatisfied([]string{"pwd", "otp", "mfa"})
}
