package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// TestJournalObjectsAndHolderCredentials: ListJournal gives each entry's object before and
// after as a structure (what grpcurl prints as JSON objects), beside the deprecated JSON
// strings; the holder's credentials set through a setup link, reset through a reset link
// and a TOTP secret enrolled appear in the identifier's journal, with no secret.
func TestJournalObjectsAndHolderCredentials(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	alpha := e.newAgent("alpha")
	const name = "journal.example.test"
	h := e.holderFor(alpha, name, false)
	reset, err := e.registry.CreateCredentialLink(alpha.ctx(), &registryv1.CreateCredentialLinkRequest{Identifier: name, Purpose: registryv1.CredentialLink_PURPOSE_RESET})
	if err != nil {
		t.Fatal(err)
	}
	h2 := e.setCredentials(name, reset.Url, true)

	j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "identifier", ObjectId: name})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	byAction := map[string]*registryv1.JournalEntry{}
	for _, entry := range j.Entries {
		actions = append(actions, entry.Action)
		byAction[entry.Action] = entry
		// The structure is the string, parsed.
		if (entry.After != "") != (entry.AfterObject != nil) || (entry.Before != "") != (entry.BeforeObject != nil) {
			t.Errorf("%s: before %q / %v, after %q / %v: the objects and the strings disagree", entry.Action, entry.Before, entry.BeforeObject, entry.After, entry.AfterObject)
		}
		text := protojson.Format(entry)
		for _, secret := range []string{h.Password, h2.Password, strings.TrimPrefix(reset.Url, e.issuer+"/credential/"), "$argon2id$", "totpSecret", "passwordHash"} {
			if strings.Contains(text, secret) {
				t.Errorf("journal entry %s holds a secret (%q)", entry.Action, secret)
			}
		}
	}
	want := []string{"identifier.register", "credential_link.create", "holder_credential.set", "credential_link.create", "holder_credential.reset", "holder_credential.totp_enrol"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("the identifier's journal: %v, want %v", actions, want)
	}
	set := byAction["holder_credential.set"]
	if set.Actor != "holder:"+name || set.BeforeObject != nil {
		t.Errorf("holder_credential.set: actor %q, before %v", set.Actor, set.BeforeObject)
	}
	after := set.AfterObject.AsMap()
	if after["purpose"] != "setup" || after["link_agent_id"] != alpha.agent.Id || after["totp"] != false || after["identity_id"] == "" {
		t.Errorf("holder_credential.set after: %v", after)
	}
	if got := byAction["holder_credential.totp_enrol"].AfterObject.AsMap(); got["purpose"] != "reset" || got["totp"] != true {
		t.Errorf("holder_credential.totp_enrol after: %v", got)
	}
	// An identifier's own object, as a structure: grpcurl prints it as JSON, not a string.
	reg := byAction["identifier.register"]
	if obj := reg.AfterObject.AsMap(); obj["name"] != name {
		t.Errorf("identifier.register after_object %v does not name %s", obj, name)
	}
	js, err := protojson.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	var asJSON struct {
		AfterObject map[string]any `json:"afterObject"`
	}
	if err := json.Unmarshal(js, &asJSON); err != nil || asJSON.AfterObject["name"] != name {
		t.Errorf("the entry in JSON has no afterObject object naming %s (%v):\n%s", name, err, js)
	}
}
