package registry

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// registryImport is the import path of this package.
const registryImport = "github.com/id4me/id4me-registry/registry"

var upperSnake = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// Every catalogue entry is a well-formed reason with a kind and a one-line description, and
// every Reason constant of this package is in the catalogue.
func TestReasonCatalogue(t *testing.T) {
	for k := range kindNames {
		if !slices.Contains(slices.Collect(maps.Values(kinds)), k) {
			t.Errorf("kind %v is missing from the test's kinds", k)
		}
	}
	for _, in := range Reasons() {
		if !upperSnake.MatchString(string(in.Reason)) {
			t.Errorf("reason %q is not UPPER_SNAKE", in.Reason)
		}
		if !slices.Contains(slices.Collect(maps.Values(kinds)), in.Kind) {
			t.Errorf("reason %s has kind %v, which is not a Kind", in.Reason, in.Kind)
		}
		if d := in.Description; d == "" || strings.ContainsAny(d, "\n|") || strings.TrimSpace(d) != d {
			t.Errorf("reason %s: description %q is not one line of text", in.Reason, d)
		}
	}
	consts := registryConsts(t)
	if len(consts) == 0 {
		t.Fatal("found no Reason constants in reasons.go")
	}
	for name, v := range consts {
		if _, ok := Reason(v).Info(); !ok {
			t.Errorf("%s = %q is not in the catalogue", name, v)
		}
	}
	if got := len(Reasons()); got != len(consts) {
		t.Errorf("the catalogue has %d reasons, reasons.go declares %d constants", got, len(consts))
	}
}

// NewError takes the kind from the catalogue.
func TestErrorKindFromCatalogue(t *testing.T) {
	if e := NewError(ReasonTransferPending, "x"); e.Kind != KindFailedPrecondition || e.Reason != "TRANSFER_PENDING" {
		t.Errorf("NewError(TRANSFER_PENDING) = kind %v reason %s", e.Kind, e.Reason)
	}
	if e := NewError("NOT_IN_THE_CATALOGUE", "x"); e.Kind != KindInternal {
		t.Errorf("NewError of an uncatalogued reason has kind %v, want internal", e.Kind)
	}
}

// Every reason the module's code gives is a catalogue constant, with the catalogue's kind,
// and every catalogued reason is given somewhere. The code is read as source: calls of
// NewError, Reason conversions, Reason fields of Error and ErrorInfo literals,
// comparisons with ReasonOf and GetReason, and the arguments of the functions that pass a
// parameter on to one of those (the server's statusError, the store's notFound).
func TestReasonsInCode(t *testing.T) {
	root := moduleRoot(t)
	s := newReasonScan(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		s.dir(filepath.ToSlash(rel), parseDir(t, s.fset, path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.finish() {
		t.Error(p)
	}
	if s.sites < 100 {
		t.Fatalf("found only %d reason sites in the module; the scan is missing them", s.sites)
	}
}

// The scan refuses what it is there to refuse.
func TestReasonScanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, dir, src, want string
	}{
		{"an uncatalogued reason", "server", `package server
import "github.com/id4me/id4me-registry/registry"
func f() error { return registry.NewError("NO_SUCH_REASON", "x") }`, `"NO_SUCH_REASON" is not in the catalogue`},
		{"a catalogued reason written inline", "authority", `package authority
import "github.com/id4me/id4me-registry/registry"
func f() error { return registry.NewError("IDENTIFIER_TAKEN", "x") }`, "registry.ReasonIdentifierTaken"},
		{"an inline reason through a wrapper", "cmd/x", `package main
import reg "github.com/id4me/id4me-registry/registry"
func gone(reason reg.Reason, what string) error { return reg.NewError(reason, "%s", what) }
func g() error { return gone("GONE_AWAY", "it") }`, `"GONE_AWAY" is not in the catalogue`},
		{"another kind than the catalogue's", "server", `package server
import "github.com/id4me/id4me-registry/registry"
var e = &registry.Error{Kind: registry.KindNotFound, Reason: registry.ReasonTransferPending}`, "kind KindNotFound, the catalogue says failed precondition"},
		{"an Error literal", "server", `package server
import "github.com/id4me/id4me-registry/registry"
var e = &registry.Error{Kind: registry.KindNotFound, Reason: "LOST"}`, `"LOST" is not in the catalogue`},
		{"an ErrorInfo literal", "server", `package server
import "google.golang.org/genproto/googleapis/rpc/errdetails"
var i = &errdetails.ErrorInfo{Reason: "SLOW_DOWN"}`, `"SLOW_DOWN" is not in the catalogue`},
		{"a status helper", "server", `package server
import "google.golang.org/genproto/googleapis/rpc/errdetails"
func statusError(reason, msg string) error { return detailed(msg, &errdetails.ErrorInfo{Reason: reason}) }
func f() error { return statusError("BUSY", "x") }`, `"BUSY" is not in the catalogue`},
		{"a comparison", "agent", `package agent
func f(d interface{ GetReason() string }) bool { return d.GetReason() == "WENT_AWAY" }`, `"WENT_AWAY" is not in the catalogue`},
		{"a conversion", "registry", `package registry
var r = Reason("MADE_UP")`, `"MADE_UP" is not in the catalogue`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newReasonScan(t)
			f, err := parser.ParseFile(s.fset, tc.dir+"/x.go", tc.src, 0)
			if err != nil {
				t.Fatal(err)
			}
			s.dir(tc.dir, []*ast.File{f})
			problems := strings.Join(s.problems, "\n")
			if !strings.Contains(problems, tc.want) {
				t.Fatalf("problems:\n%s\nwant one saying %s", problems, tc.want)
			}
		})
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/id4me/id4me-registry\n") {
		t.Fatalf("%s is not the module's root: %v", root, err)
	}
	return root
}

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// registryConsts returns the Reason constants reasons.go declares, by name.
func registryConsts(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				continue
			}
			for k, n := range vs.Names {
				if v, ok := stringLit(vs.Values[k]); ok {
					out[n.Name] = v
				}
			}
		}
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	l, ok := e.(*ast.BasicLit)
	if !ok || l.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(l.Value)
	return v, err == nil
}

// reasonScan reads a module's source for the reasons it gives.
type reasonScan struct {
	fset     *token.FileSet
	reasons  map[string]string // the catalogue constants, by name
	problems []string
	used     map[Reason]bool
	// sites counts the reason sites found.
	sites int
}

func newReasonScan(t *testing.T) *reasonScan {
	return &reasonScan{
		fset: token.NewFileSet(), reasons: registryConsts(t),
		used: map[Reason]bool{},
	}
}

// pkgScan is the scan of one directory's package.
type pkgScan struct {
	*reasonScan
	rel        string
	inRegistry bool
	consts     map[string]string // the package's own string constants (and variables)
	// wrappers are the package's functions that pass a parameter on as a reason: by name,
	// the parameter's index and the kind they give it ("" when not a constant).
	wrappers map[string]wrapper
}

type wrapper struct {
	param int
	kind  string
}

// fileScan is the scan of one file: the name it imports the registry package under.
type fileScan struct {
	*pkgScan
	reg string
}

func (s *reasonScan) dir(rel string, files []*ast.File) {
	if len(files) == 0 {
		return
	}
	p := &pkgScan{reasonScan: s, rel: rel, inRegistry: rel == "registry", consts: map[string]string{}, wrappers: map[string]wrapper{}}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for k, name := range vs.Names {
					if k < len(vs.Values) {
						if v, ok := stringLit(vs.Values[k]); ok {
							p.consts[name.Name] = v
						}
					}
				}
			}
			return true
		})
	}
	var scans []*fileScan
	for _, f := range files {
		fs := &fileScan{pkgScan: p}
		for _, im := range f.Imports {
			if path, _ := strconv.Unquote(im.Path.Value); path == registryImport {
				fs.reg = "registry"
				if im.Name != nil {
					fs.reg = im.Name.Name
				}
			}
		}
		scans = append(scans, fs)
		fs.references(f)
	}
	// Wrappers pass reasons to wrappers: read until no new one is found, then check.
	for n := -1; n != len(p.wrappers); {
		n = len(p.wrappers)
		for k, f := range files {
			scans[k].walk(f, false)
		}
	}
	for k, f := range files {
		scans[k].walk(f, true)
	}
}

// references marks the catalogue constants f names as used.
func (fs *fileScan) references(f *ast.File) {
	if fs.inRegistry && filepath.Base(fs.fset.Position(f.Pos()).Filename) == "reasons.go" {
		return
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && fs.reg != "" && id.Name == fs.reg {
				if v, ok := fs.reasons[n.Sel.Name]; ok {
					fs.used[Reason(v)] = true
				}
			}
		case *ast.Ident:
			if v, ok := fs.reasons[n.Name]; ok && fs.inRegistry {
				fs.used[Reason(v)] = true
			}
		}
		return true
	})
}

// walk finds the reason sites of f; with check, it checks them, else it only learns
// wrappers.
func (fs *fileScan) walk(f *ast.File, check bool) {
	var fn *ast.FuncDecl
	site := func(e ast.Expr, kind ast.Expr, compared bool) {
		fs.site(fn, e, kind, compared, check)
	}
	visit := func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			name, ok := fs.callee(n.Fun)
			switch {
			case ok && name == "NewError" && len(n.Args) > 0:
				site(n.Args[0], nil, false)
			case ok && name == "Reason" && len(n.Args) == 1:
				site(n.Args[0], nil, false)
			default:
				w, ok := fs.wrappers[calledName(n.Fun)]
				if !ok || w.param >= len(n.Args) {
					break
				}
				var kind ast.Expr
				if w.kind != "" {
					kind = ast.NewIdent(w.kind)
				}
				site(n.Args[w.param], kind, false)
			}
		case *ast.CompositeLit:
			if fs.errorType(n.Type) {
				var reason, kind ast.Expr
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						switch key, _ := kv.Key.(*ast.Ident); {
						case key == nil:
						case key.Name == "Reason":
							reason = kv.Value
						case key.Name == "Kind":
							kind = kv.Value
						}
					}
				}
				if reason != nil {
					site(reason, kind, false)
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				switch {
				case fs.readsReason(n.X):
					site(n.Y, nil, true)
				case fs.readsReason(n.Y):
					site(n.X, nil, true)
				}
			}
		case *ast.SwitchStmt:
			if n.Tag != nil && fs.readsReason(n.Tag) {
				for _, c := range n.Body.List {
					for _, e := range c.(*ast.CaseClause).List {
						site(e, nil, true)
					}
				}
			}
		}
		return true
	}
	for _, d := range f.Decls {
		fn, _ = d.(*ast.FuncDecl)
		ast.Inspect(d, visit)
	}
}

// callee returns the name of a registry function fun calls: NewError, Reason (a
// conversion), ReasonOf.
func (fs *fileScan) callee(fun ast.Expr) (string, bool) {
	switch fun := fun.(type) {
	case *ast.Ident:
		return fun.Name, fs.inRegistry
	case *ast.SelectorExpr:
		id, ok := fun.X.(*ast.Ident)
		return fun.Sel.Name, ok && fs.reg != "" && id.Name == fs.reg
	}
	return "", false
}

// calledName returns the name of the function or method fun calls.
func calledName(fun ast.Expr) string {
	switch fun := fun.(type) {
	case *ast.Ident:
		return fun.Name
	case *ast.SelectorExpr:
		return fun.Sel.Name
	case *ast.IndexExpr:
		return calledName(fun.X)
	}
	return ""
}

// errorType reports whether t is registry.Error or an ErrorInfo.
func (fs *fileScan) errorType(t ast.Expr) bool {
	switch t := t.(type) {
	case *ast.Ident:
		return fs.inRegistry && t.Name == "Error"
	case *ast.SelectorExpr:
		id, ok := t.X.(*ast.Ident)
		return ok && (t.Sel.Name == "ErrorInfo" || fs.reg != "" && id.Name == fs.reg && t.Sel.Name == "Error")
	}
	return false
}

// readsReason reports whether e reads an error's reason: ReasonOf(…) or ….GetReason().
func (fs *fileScan) readsReason(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	if name, ok := fs.callee(call.Fun); ok && name == "ReasonOf" {
		return true
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "GetReason"
}

// site checks the reason e (given with kind, if not nil) in the function fn. A parameter of
// fn makes fn a wrapper.
func (fs *fileScan) site(fn *ast.FuncDecl, e, kind ast.Expr, compared, check bool) {
	for {
		if p, ok := e.(*ast.ParenExpr); ok {
			e = p.X
			continue
		}
		// Conversions: string(r), Reason(r), registry.Reason(r).
		if c, ok := e.(*ast.CallExpr); ok && len(c.Args) == 1 {
			if name, ok := fs.callee(c.Fun); (ok && name == "Reason") || calledName(c.Fun) == "string" {
				e = c.Args[0]
				continue
			}
		}
		break
	}
	value, inline, ok := fs.value(e)
	if !ok {
		if id, isIdent := e.(*ast.Ident); isIdent && fn != nil {
			if _, known := fs.wrappers[fn.Name.Name]; !known {
				if k := paramIndex(fn.Type, id.Name); k >= 0 {
					w := wrapper{param: k}
					if kind != nil {
						w.kind = kindName(kind, fs.reg)
					}
					fs.wrappers[fn.Name.Name] = w
				}
			}
		}
		return // not a constant: checked where it comes from, and at run time by the server
	}
	if !check {
		return
	}
	fs.sites++
	pos := fs.fset.Position(e.Pos())
	r := Reason(value)
	in, catalogued := r.Info()
	switch {
	case !catalogued:
		fs.problems = append(fs.problems, fmt.Sprintf("%s: reason %q is not in the catalogue (registry/reasons.go)", pos, value))
		return
	case inline && !compared:
		fs.problems = append(fs.problems, fmt.Sprintf("%s: reason %q written inline; write registry.%s", pos, value, constName(fs.reasons, value)))
	}
	if !compared {
		fs.used[r] = true
	}
	if kind == nil {
		return
	}
	k := kindName(kind, fs.reg)
	if k == "" {
		return
	}
	if got, known := kinds[k]; !known || got != in.Kind {
		fs.problems = append(fs.problems, fmt.Sprintf("%s: reason %s given kind %s, the catalogue says %v", pos, value, k, in.Kind))
	}
}

// value returns the string e stands for, and whether it is written inline (a literal or a
// constant other than the catalogue's).
func (fs *fileScan) value(e ast.Expr) (v string, inline, ok bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		v, ok := stringLit(e)
		return v, true, ok
	case *ast.Ident:
		if fs.inRegistry {
			if v, ok := fs.reasons[e.Name]; ok {
				return v, false, true
			}
		}
		v, ok := fs.consts[e.Name]
		return v, true, ok
	case *ast.SelectorExpr:
		if id, ok := e.X.(*ast.Ident); ok && fs.reg != "" && id.Name == fs.reg {
			v, ok := fs.reasons[e.Sel.Name]
			return v, false, ok
		}
	}
	return "", false, false
}

func paramIndex(ft *ast.FuncType, name string) int {
	k := 0
	for _, field := range ft.Params.List {
		for _, n := range field.Names {
			if n.Name == name {
				return k
			}
			k++
		}
		if len(field.Names) == 0 {
			k++
		}
	}
	return -1
}

// kindName returns the name of the Kind constant e names, or "".
func kindName(e ast.Expr, reg string) string {
	switch e := e.(type) {
	case *ast.Ident:
		if strings.HasPrefix(e.Name, "Kind") {
			return e.Name
		}
	case *ast.SelectorExpr:
		if id, ok := e.X.(*ast.Ident); ok && id.Name == reg && strings.HasPrefix(e.Sel.Name, "Kind") {
			return e.Sel.Name
		}
	}
	return ""
}

// kinds are the Kind constants by name.
var kinds = map[string]Kind{
	"KindInternal": KindInternal, "KindInvalidArgument": KindInvalidArgument, "KindNotFound": KindNotFound,
	"KindAlreadyExists": KindAlreadyExists, "KindFailedPrecondition": KindFailedPrecondition, "KindAborted": KindAborted,
	"KindPermissionDenied": KindPermissionDenied, "KindUnauthenticated": KindUnauthenticated,
	"KindResourceExhausted": KindResourceExhausted, "KindUnavailable": KindUnavailable,
	"KindUnimplemented": KindUnimplemented, "KindCanceled": KindCanceled, "KindDeadlineExceeded": KindDeadlineExceeded,
}

func constName(reasons map[string]string, v string) string {
	for name, r := range reasons {
		if r == v {
			return name
		}
	}
	return "Reason…"
}

// finish returns the problems found, with every catalogued reason not given anywhere.
func (s *reasonScan) finish() []string {
	for _, in := range Reasons() {
		if !s.used[in.Reason] {
			s.problems = append(s.problems, fmt.Sprintf("reason %s is catalogued but given nowhere: remove it from registry/reasons.go", in.Reason))
		}
	}
	return s.problems
}
