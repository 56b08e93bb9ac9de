// Command id4me-agent is an ID4me agent's client of the registry: it registers and transfers
// identifiers, publishing the DNS challenge record through a lego DNS provider, lists them,
// follows the agent's events and deletes them. It is "id4me-registry agent" without the
// registry's server code.
//
//	id4me-agent register NAME --dns-provider rfc2136    register an identifier
//	id4me-agent transfer NAME --dns-provider rfc2136    take an identifier over
//	id4me-agent list                                    list the identifiers the agent sponsors
//	id4me-agent events                                  print the agent's events as they happen
//	id4me-agent delete NAME                             delete an identifier
//
// Every flag has an environment variable: --token is ID4ME_AGENT_TOKEN, and so on.
package main

import (
	"github.com/id4me/id4me-registry/agent/cli"
	"github.com/id4me/id4me-registry/internal/cmdline"
)

func main() {
	cmdline.Main("id4me-agent", cli.Command{Program: "id4me-agent"}.Run)
}
