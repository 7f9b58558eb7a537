package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/facewatch/facewatch/alert"
	"github.com/facewatch/facewatch/internal/testdata"
)

// The demo's scenario is the standard one: its enrolled person.
const demoPerson = "John_Salley"

var (
	demoConsole = regexp.MustCompile(`^demo: console (http://\S+)/console$`)
	demoToken   = regexp.MustCompile(`^demo:\s+([a-z]+)\s+(fwt_\S+)\s`)
	demoStopped = regexp.MustCompile(`^demo: stopped; removed (\S+)$`)
)

// startDemo runs `facewatch dev demo` with args in a process group of its
// own (a terminal's Ctrl-C signals the whole group) and TMPDIR set to an
// empty directory, which it returns: the demo must leave it empty.
func startDemo(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	if _, err := testdata.Find("dlib_johns"); err != nil {
		t.Skip(err)
	}
	tmp := t.TempDir()
	cmd := exec.Command(bin, append([]string{"dev", "demo"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := startCmd(t, "demo", cmd)
	t.Cleanup(func() { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) })
	return p, tmp
}

// demoTokens waits for the demo's console URL and reads the token it
// printed for each role.
func demoTokens(t *testing.T, p *proc) (base string, tokens map[alert.Role]string) {
	t.Helper()
	// Rendering the clip and loading the models take a while on a
	// loaded machine.
	base = p.waitLine(t, demoConsole, 3*time.Minute)[1]
	tokens = map[alert.Role]string{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.out {
		if m := demoToken.FindStringSubmatch(l); m != nil {
			if _, dup := tokens[alert.Role(m[1])]; dup {
				t.Errorf("the demo printed two tokens for %s", m[1])
			}
			tokens[alert.Role(m[1])] = m[2]
		}
		// A token in a URL ends up in browser histories and logs.
		if regexp.MustCompile(`://\S*fwt_`).MatchString(l) {
			t.Errorf("the demo printed a token inside a URL: %q", l)
		}
	}
	for _, r := range alert.Roles() {
		if tokens[r] == "" {
			t.Errorf("the demo printed no token for role %s", r)
		}
	}
	return base, tokens
}

// stopDemo sends SIGINT to the demo's process group, as Ctrl-C does, and
// checks that it exits promptly with status 0, that no process of its
// group is left, and that its temporary directory is gone.
func stopDemo(t *testing.T, p *proc, tmp string) {
	t.Helper()
	pid := p.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Signal(syscall.SIGQUIT) // goroutines to the log
		<-p.done
		t.Fatalf("the demo was still running 30s after SIGINT")
	}
	checkDemoGone(t, p, tmp)
}

// checkDemoGone checks an ended demo: exit status 0, no process left in
// its group, nothing left in its TMPDIR, and the line saying so.
func checkDemoGone(t *testing.T, p *proc, tmp string) {
	t.Helper()
	if p.err != nil {
		t.Errorf("the demo exited with %v, want status 0", p.err)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("signalling the demo's process group after it exited = %v, want ESRCH (no process left)", err)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range left {
		t.Errorf("the demo left %s in its TMPDIR", f.Name())
	}
	m := p.waitLine(t, demoStopped, time.Second)
	if !strings.HasPrefix(m[1], tmp) {
		t.Errorf("the demo says it removed %s, want a directory under its TMPDIR %s", m[1], tmp)
	}
}

// TestDemoLoop runs the demo as `make demo` runs it from a terminal
// (--loop, which a test without a terminal must ask for): it prints the
// console's URL and a token per role, an operator signs in with the
// printed token through the sign-in form, and live alerts keep arriving
// past the clip's end (the camera loops: one pass has two appearances of
// the enrolled person); then Ctrl-C ends it, leaving nothing behind.
func TestDemoLoop(t *testing.T) {
	p, tmp := startDemo(t, "--loop")
	base, tokens := demoTokens(t, p)

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(base+"/signin", url.Values{"token": {tokens[alert.RoleOperator]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console" {
		t.Fatalf("POST /signin with the operator token = %s, Location %q; want 303 to /console", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = client.Get(base + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /console with the session cookie = %s %s; want 200 HTML", resp.Status, resp.Header.Get("Content-Type"))
	}

	// The live feed, with the session cookie as the console reads it.
	live := &http.Client{Jar: jar} // no timeout: a stream
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/live", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = live.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/live with the session cookie = %s, want 200", resp.Status)
	}
	type liveAlert struct {
		ID           int64  `json:"id"`
		IdentityName string `json:"identity_name"`
		Track        uint64 `json:"track"`
	}
	alerts := make(chan liveAlert)
	quit := make(chan struct{})
	defer close(quit)
	go func() { // ends when the stream does (the demo stopping, or the deferred Close)
		defer close(alerts)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var a liveAlert
			if json.Unmarshal([]byte(data), &a) == nil && a.ID != 0 {
				select {
				case alerts <- a:
				case <-quit:
					return
				}
			}
		}
	}()
	// One pass of the clip has two appearances of the person; a third
	// alert means the camera looped and the service kept up.
	var got []liveAlert
	deadline := time.After(4 * time.Minute)
	for len(got) < 3 {
		select {
		case a, ok := <-alerts:
			if !ok {
				t.Fatalf("the live feed ended after %d alerts, want 3 (%+v)", len(got), got)
			}
			if a.IdentityName != demoPerson {
				t.Errorf("live alert %d names %q, want %q (the strangers are not enrolled)", a.ID, a.IdentityName, demoPerson)
			}
			got = append(got, a)
		case <-deadline:
			t.Fatalf("%d live alerts in 4 minutes, want 3: the camera should loop (%+v)", len(got), got)
		}
	}
	tracks := map[uint64]bool{}
	for _, a := range got {
		tracks[a.Track] = true
	}
	if len(tracks) != len(got) {
		t.Errorf("live alerts %+v share tracks; want one alert per appearance", got)
	}
	stopDemo(t, p, tmp)
}

// TestDemoBounded runs the demo as CI and a non-interactive `make setup`
// do: the clip plays once and the demo ends by itself once the enrolled
// person's two alerts have been printed, with nothing left behind.
func TestDemoBounded(t *testing.T) {
	p, tmp := startDemo(t, "--for", "3m")
	demoTokens(t, p)
	select {
	case <-p.done:
	case <-time.After(4 * time.Minute):
		t.Fatal("the bounded demo was still running after 4 minutes")
	}
	checkDemoGone(t, p, tmp)
	p.mu.Lock()
	var alerts []string
	for _, l := range p.out {
		if strings.HasPrefix(l, "ALERT ") {
			alerts = append(alerts, l)
		}
	}
	p.mu.Unlock()
	if len(alerts) != 2 || slices.ContainsFunc(alerts, func(l string) bool { return !strings.Contains(l, `identity="`+demoPerson+`"`) }) {
		t.Errorf("the bounded demo printed alert lines %q, want two, both for %s", alerts, demoPerson)
	}
	p.waitLine(t, regexp.MustCompile(`^demo: 2 alerts for `+demoPerson+` \(the clip has 2 appearances\), 0 for anyone else$`), time.Second)
}
