package natsbus

import (
	"testing"

	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/testcert"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, made by the test and written as PEM files.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func makePKI(t testing.TB, dir string) testPKI {
	t.Helper()
	ca := testcert.NewCA(t, dir)
	p := testPKI{CA: ca.File}
	p.ServerCert, p.ServerKey = ca.Issue(t, testcert.Leaf{Name: "server"})
	p.ClientCert, p.ClientKey = ca.Issue(t, testcert.Leaf{Name: "client", Client: true})
	return p
}

// serverTLSFiles and clientTLSFiles are the config sections for p.
func (p testPKI) serverTLSFiles() config.TLSFiles {
	return config.TLSFiles{CAFile: p.CA, CertFile: p.ServerCert, KeyFile: p.ServerKey}
}

func (p testPKI) clientTLSFiles() config.TLSFiles {
	return config.TLSFiles{CAFile: p.CA, CertFile: p.ClientCert, KeyFile: p.ClientKey}
}
