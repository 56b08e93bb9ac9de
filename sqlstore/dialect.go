package sqlstore

import (
	"strconv"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
)

// sqliteDialect is gorm's SQLite dialect, on a connection pool of modernc.org/sqlite (pure Go).
// It is gorm.io/driver/sqlite's, less its schema migrator (migrations/ keeps the schema) and
// its import of github.com/mattn/go-sqlite3, a cgo driver the store does not use; and
// github.com/glebarez/sqlite, the dialect for modernc.org/sqlite, comes with a fork of that
// driver that registers the same database/sql driver name, and does not keep compiled
// statements.
//
// Adapted from gorm.io/driver/sqlite v1.6.0, under its MIT License:
// Copyright (c) 2013-NOW Jinzhu <wosmvp@gmail.com>. Permission is hereby granted, free of
// charge, to any person obtaining a copy of this software and associated documentation files
// (the "Software"), to deal in the Software without restriction, including without
// limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or
// sell copies of the Software, and to permit persons to whom the Software is furnished to do
// so, subject to the following conditions: The above copyright notice and this permission
// notice shall be included in all copies or substantial portions of the Software. THE
// SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
type sqliteDialect struct {
	conn gorm.ConnPool
}

var _ gorm.Dialector = sqliteDialect{}

func (sqliteDialect) Name() string { return "sqlite" }

func (d sqliteDialect) Initialize(db *gorm.DB) error {
	db.ConnPool = d.conn
	// modernc.org/sqlite bundles SQLite ≥ 3.35, which has RETURNING.
	callbacks.RegisterDefaultCallbacks(db, &callbacks.Config{
		CreateClauses:        []string{"INSERT", "VALUES", "ON CONFLICT", "RETURNING"},
		UpdateClauses:        []string{"UPDATE", "SET", "FROM", "WHERE", "RETURNING"},
		DeleteClauses:        []string{"DELETE", "FROM", "WHERE", "RETURNING"},
		LastInsertIDReversed: true,
	})
	db.ClauseBuilders["LIMIT"] = func(c clause.Clause, builder clause.Builder) {
		// SQLite has no OFFSET without LIMIT: LIMIT -1 is none.
		if limit, ok := c.Expression.(clause.Limit); ok {
			lmt := -1
			if limit.Limit != nil && *limit.Limit >= 0 {
				lmt = *limit.Limit
			}
			if lmt >= 0 || limit.Offset > 0 {
				builder.WriteString("LIMIT " + strconv.Itoa(lmt))
			}
			if limit.Offset > 0 {
				builder.WriteString(" OFFSET " + strconv.Itoa(limit.Offset))
			}
		}
	}
	db.ClauseBuilders["FOR"] = func(c clause.Clause, builder clause.Builder) {
		// SQLite locks the database, not rows: FOR UPDATE and the like are left out.
		if _, ok := c.Expression.(clause.Locking); !ok {
			c.Build(builder)
		}
	}
	return nil
}

func (d sqliteDialect) Migrator(db *gorm.DB) gorm.Migrator {
	return migrator.Migrator{Config: migrator.Config{DB: db, Dialector: d, CreateIndexAfterCreateTable: true}}
}

func (sqliteDialect) DataTypeOf(field *schema.Field) string {
	switch field.DataType {
	case schema.Bool, schema.Int, schema.Uint:
		return "integer"
	case schema.Float:
		return "real"
	case schema.String:
		return "text"
	case schema.Time:
		return "integer" // dbTime: Unix nanoseconds
	case schema.Bytes:
		return "blob"
	}
	return string(field.DataType)
}

func (sqliteDialect) DefaultValueOf(field *schema.Field) clause.Expression {
	if field.AutoIncrement {
		return clause.Expr{SQL: "NULL"}
	}
	return clause.Expr{SQL: "DEFAULT"}
}

func (sqliteDialect) BindVarTo(writer clause.Writer, _ *gorm.Statement, _ any) {
	writer.WriteByte('?')
}

// QuoteTo quotes each dot-separated part of an identifier in backticks (which, unlike double
// quotes, SQLite never takes for a string).
func (sqliteDialect) QuoteTo(writer clause.Writer, str string) {
	for i, part := range strings.Split(str, ".") {
		if i > 0 {
			writer.WriteByte('.')
		}
		writer.WriteByte('`')
		writer.WriteString(strings.ReplaceAll(strings.Trim(part, "`"), "`", "``"))
		writer.WriteByte('`')
	}
}

func (sqliteDialect) Explain(sql string, vars ...any) string {
	return logger.ExplainSQL(sql, nil, `"`, vars...)
}

func (sqliteDialect) SavePoint(tx *gorm.DB, name string) error {
	return tx.Exec("SAVEPOINT " + name).Error
}

func (sqliteDialect) RollbackTo(tx *gorm.DB, name string) error {
	return tx.Exec("ROLLBACK TO SAVEPOINT " + name).Error
}
