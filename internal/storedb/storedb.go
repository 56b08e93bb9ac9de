// Package storedb hands this module's tests and benchmarks the gorm handle behind a
// sqlstore.Store, which the store keeps out of its exported API: they count rows, seed
// tables in bulk and corrupt rows on purpose, which no caller of the store may do.
//
// sqlstore registers the accessor when it is linked in; storedb imports nothing of it, so
// that sqlstore's own tests can use both.
package storedb

import "gorm.io/gorm"

var handle func(store any) *gorm.DB

// Register sets the accessor DB calls; sqlstore calls it from init.
func Register(f func(store any) *gorm.DB) { handle = f }

// DB returns the gorm handle of store, a *sqlstore.Store. Statements run through it are
// counted in the store's Statements.
func DB(store any) *gorm.DB {
	if handle == nil {
		panic("storedb: sqlstore is not linked in")
	}
	return handle(store)
}
