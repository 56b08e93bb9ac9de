package rpdebug

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
)

//go:embed templates/*.html templates/style.css
var templateFS embed.FS

// pages renders the RP's pages: server-side, in the authority's style, no JavaScript.
type pages struct {
	t     *template.Template
	style []byte
}

func newPages() *pages {
	t := template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))
	style, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		panic(err)
	}
	return &pages{t: t, style: style}
}

// render writes page name with data, with headers that forbid caching, framing and
// scripts; a template failure is a 500.
func (p *pages) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.t.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "internal error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (p *pages) serveStyle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(p.style)
}

type errorData struct{ Title, Detail string }

func (rp *RP) errorPage(w http.ResponseWriter, status int, title, detail string) {
	rp.pages.render(w, status, "error", errorData{Title: title, Detail: detail})
}
