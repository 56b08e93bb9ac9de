package authority

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strconv"
)

//go:embed templates/*.html templates/style.css
var templateFS embed.FS

// pages renders the authority's HTML pages: server-side, no JavaScript.
type pages struct {
	t     *template.Template
	style []byte
}

func newPages() *pages {
	t := template.Must(template.New("").Funcs(pageFuncs).ParseFS(templateFS, "templates/*.html"))
	style, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		panic(err)
	}
	return &pages{t: t, style: style}
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
