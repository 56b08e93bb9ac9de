package cmdline

import (
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// ProtoJSON renders a message as JSON with the API's field names, nil for none.
func ProtoJSON(m proto.Message) json.RawMessage {
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// PrintJSONLine writes one message as a line of JSON.
func PrintJSONLine(w io.Writer, m proto.Message) {
	fmt.Fprintf(w, "%s\n", ProtoJSON(m))
}
