package authority

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

//go:embed templates/*.html templates/style.css templates/favicon.svg
var templateFS embed.FS

// DefaultUIName is the authority's name on its pages when Config.UIName is empty.
const DefaultUIName = "ID4me Identity Authority"

// pages renders the authority's HTML pages: server-side, no JavaScript.
type pages struct {
	t       *template.Template
	style   []byte
	favicon []byte
}

// newPages parses the embedded templates and, when uiDir is set, the operator's: each
// *.html file there may define any of the templates again (the "head" and "foot" of the
// layout, a page such as "consent"), and style.css and favicon.svg there replace the
// embedded ones. name is the authority's name on every page ({{uiName}}).
func newPages(name, uiDir string) (*pages, error) {
	if name == "" {
		name = DefaultUIName
	}
	funcs := template.FuncMap{"uiName": func() string { return name }}
	for k, f := range pageFuncs {
		funcs[k] = f
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("authority: pages: %w", err)
	}
	p := &pages{t: t}
	if p.style, err = templateFS.ReadFile("templates/style.css"); err != nil {
		return nil, err
	}
	if p.favicon, err = templateFS.ReadFile("templates/favicon.svg"); err != nil {
		return nil, err
	}
	if uiDir == "" {
		return p, nil
	}
	if st, err := os.Stat(uiDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("authority: UI directory %s: not a directory (%v)", uiDir, err)
	}
	own, err := filepath.Glob(filepath.Join(uiDir, "*.html"))
	if err != nil {
		return nil, err
	}
	if len(own) > 0 {
		if _, err := p.t.ParseFiles(own...); err != nil {
			return nil, fmt.Errorf("authority: UI directory %s: %w", uiDir, err)
		}
	}
	for file, into := range map[string]*[]byte{"style.css": &p.style, "favicon.svg": &p.favicon} {
		b, err := os.ReadFile(filepath.Join(uiDir, file))
		switch {
		case err == nil:
			*into = b
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("authority: UI directory: %w", err)
		}
	}
	// A template that cannot run fails here, at start, not on a holder's screen.
	for _, name := range []string{"home", "login", "totp", "consent", "error", "credential", "totp-enrol", "credential-done"} {
		if p.t.Lookup(name) == nil {
			return nil, fmt.Errorf("authority: UI directory %s: the page %q is not defined any more", uiDir, name)
		}
	}
	return p, nil
}

// pageHeaders are the headers of every HTML page: no caching, no framing, and no script
// but the passkey script, admitted by its hash.
func pageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src '"+passkeyScriptHash+"'; style-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'")
}

// render writes page name with data; a template failure is a 500.
func (p *pages) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	pageHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (p *pages) serveStyle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(p.style)
}

func (p *pages) serveFavicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	// An SVG opened on its own could run script: none is allowed.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Write(p.favicon)
}

// homePage is what the landing page shows.
type homePage struct {
	Issuer    string
	Discovery string
	JWKS      string
	// Documentation, Policy and TOS are the operator's pages, when configured.
	Documentation, Policy, TOS string
}

// serveHome is the landing page at the issuer's root: what this is, for people who type
// the issuer into a browser (the host of an identifier's _openid record, say).
func (a *Authority) serveHome(w http.ResponseWriter, r *http.Request) {
	a.pages.render(w, http.StatusOK, "home", homePage{
		Issuer: a.issuer, Discovery: a.issuer + pathDiscovery, JWKS: a.issuer + pathJWKS,
		Documentation: a.cfg.ServiceDocumentation, Policy: a.cfg.OPPolicyURI, TOS: a.cfg.OPTOSURI,
	})
}

// errorPage is what a browser sees when a request cannot go back to a client.
type errorPage struct {
	Title  string
	Detail string
}

func (a *Authority) errorPage(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	a.pages.render(w, status, "error", errorPage{Title: title, Detail: detail})
}

// internalErrorPage is internalError for a browser: a page that asks to come back shortly
// (503, Retry-After) while the database is out of reach, else a 500 page, logged.
func (a *Authority) internalErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	if databaseUnavailable(err) {
		w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
		a.errorPage(w, r, http.StatusServiceUnavailable, "This service is unavailable for a moment.", "Please try again in a few seconds.")
		return
	}
	a.log.ErrorContext(r.Context(), "authority: internal error", "path", r.URL.Path, "err", err)
	a.errorPage(w, r, http.StatusInternalServerError, "Something went wrong on our side.", "Please try again in a moment.")
}
