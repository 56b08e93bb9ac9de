package authority

import (
	"errors"
	"net/http"
	"slices"
)

// consentForm is what the consent page shows.
type consentForm struct {
	Request    string
	CSRF       string
	Client     ClientMetadata
	ClientHost string
	Identifier string
	Claims     []consentClaim
	Scopes     []string
}

// consentClaim is a claim as the consent page names it: in words, with its name beside.
type consentClaim struct {
	requestedClaim
	// Label says what the claim is, for the holder ("Email address").
	Label string
}

// claimLabels name the claims of OpenID Connect Core §5.1 for the holder.
var claimLabels = map[string]string{
	"name":                  "Full name",
	"given_name":            "First name",
	"family_name":           "Last name",
	"middle_name":           "Middle name",
	"nickname":              "Nickname",
	"preferred_username":    "Preferred user name",
	"profile":               "Profile page",
	"picture":               "Picture",
	"website":               "Website",
	"email":                 "Email address",
	"email_verified":        "Whether your email address is verified",
	"gender":                "Gender",
	"birthdate":             "Date of birth",
	"zoneinfo":              "Time zone",
	"locale":                "Language and region",
	"phone_number":          "Phone number",
	"phone_number_verified": "Whether your phone number is verified",
	"address":               "Postal address",
	"updated_at":            "When your profile was last updated",
}

// consentClaims labels claims; a claim the table does not know is shown by its name.
func consentClaims(claims []requestedClaim) []consentClaim {
	out := make([]consentClaim, len(claims))
	for i, c := range claims {
		label, ok := claimLabels[c.Name]
		if !ok {
			label = c.Name
		}
		out[i] = consentClaim{requestedClaim: c, Label: label}
	}
	return out
}

// serveConsentPage shows what the client asks for, to the holder logged in in this browser
// if that login serves the request; otherwise the browser goes to the login page.
func (a *Authority) serveConsentPage(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	s, ok := a.servingSession(w, r, req, a.now())
	if !ok {
		return
	}
	browser := a.browserID(w, r)
	a.pages.render(w, http.StatusOK, "consent", consentForm{
		Request: req.ID, CSRF: csrfToken(browser, "consent"+req.ID), Client: c.Metadata, ClientHost: c.Metadata.Sector,
		Identifier: s.Identifier, Claims: consentClaims(req.Params.requestedClaims()), Scopes: req.Params.Scopes,
	})
}

// serveConsent records the holder's decision: allow (remembered for the client) or deny.
func (a *Authority) serveConsent(w http.ResponseWriter, r *http.Request) {
	req, c, ok := a.pendingRequest(w, r, r.PostFormValue("req"))
	if !ok {
		return
	}
	if _, ok := checkCSRF(r, "consent"+req.ID); !ok {
		a.errorPage(w, r, http.StatusForbidden, "The form could not be verified.", "Reload the page and try again.")
		return
	}
	now := a.now()
	s, ok := a.servingSession(w, r, req, now)
	if !ok {
		return
	}
	if r.PostFormValue("decision") != "allow" {
		if err := a.store.DeleteAuthRequest(r.Context(), req.ID); err != nil {
			a.log.WarnContext(r.Context(), "authority: removing a denied authorization request", "err", err)
		}
		a.redirectError(w, r, req.Params.RedirectURI, req.Params.State, errorf("access_denied", "the holder denied the request"))
		return
	}
	claims := claimNames(req.Params.requestedClaims())
	// What was allowed before stays allowed: the consent grows with what the client asks.
	remembered := Consent{ClientID: c.ID, IdentityID: s.IdentityID, Scopes: req.Params.Scopes, Claims: claims, UpdateTime: now}
	prev, err := a.store.GetConsent(r.Context(), c.ID, s.IdentityID)
	switch {
	case err == nil:
		remembered.Scopes, remembered.Claims = union(prev.Scopes, remembered.Scopes), union(prev.Claims, remembered.Claims)
	case !errors.Is(err, ErrNotFound):
		a.internalErrorPage(w, r, err)
		return
	}
	if err := a.store.PutConsent(r.Context(), remembered); err != nil {
		a.clientGoneOrFailed(w, r, err)
		return
	}
	a.finish(w, r, c, req, s, claims, true)
}

// union returns the sorted names in a or b.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
