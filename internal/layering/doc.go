// Package layering holds no code: its test keeps the direction of the module's imports.
// The tree reads top-down: leaves (id4me, acme, dnsverify, internal/publicaddr) know no other
// package of the module; the domain (registry) knows only leaves; the authority knows the
// domain's types through a small resolver interface; the store (sqlstore) implements both;
// the transport (server) knows the domain; the binary wires them. The agent side (agent/...)
// knows only leaves, so agents can take it without any server code; its program
// (cmd/id4me-agent) links neither the store's database drivers nor the authority's password
// hashing. The debugging relying party (rpdebug) knows only leaves too: it sees ID4me from
// the wire, as any relying party.
package layering
