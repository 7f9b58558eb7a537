package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/facewatch/facewatch/internal/config"
)

// Webhook headers. The signature is HMAC-SHA256, keyed with the shared
// secret, over the timestamp, a '.', and the body; a receiver recomputes
// it and refuses a timestamp far from its own clock (a replay).
const (
	HeaderWebhookTimestamp = "X-Facewatch-Timestamp" // Unix seconds
	HeaderWebhookSignature = "X-Facewatch-Signature" // "sha256=" + hex
	HeaderWebhookDelivery  = "X-Facewatch-Delivery"  // the hit id: the same for every retry of an alert
)

// minSecret is the shortest webhook secret accepted, in bytes.
const minSecret = 16

// webhookSink POSTs each alert's Event as signed JSON. It is durable: it
// delivers from the history by a cursor, so its queue is the alerts table.
type webhookSink struct {
	url    string
	secret []byte
	client *http.Client
}

func openWebhookSink(env sinkEnv) (Sink, sinkRetry, error) {
	c := env.cfg.Webhook
	if !c.Enabled {
		return nil, sinkRetry{}, nil
	}
	secret, err := webhookSecret(c)
	if err != nil {
		return nil, sinkRetry{}, err
	}
	return &webhookSink{url: c.URL, secret: secret, client: &http.Client{Timeout: c.Timeout}},
		sinkRetry{min: c.BackoffMin, max: c.BackoffMax}, nil
}

// webhookSecret reads the signing key from its file or environment
// variable. Errors name where it was looked for, never its value.
func webhookSecret(c config.Webhook) ([]byte, error) {
	var s, from string
	if c.SecretFile != "" {
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("reading secret_file: %w", err)
		}
		s, from = string(b), "secret_file "+c.SecretFile
	} else {
		s, from = os.Getenv(c.SecretEnv), "environment variable "+c.SecretEnv
	}
	s = strings.TrimSpace(s)
	if len(s) < minSecret {
		return nil, fmt.Errorf("webhook secret from %s: %d bytes, want at least %d", from, len(s), minSecret)
	}
	return []byte(s), nil
}

// SignWebhook is the signature header value for body sent at timestamp ts
// (Unix seconds, as sent in HeaderWebhookTimestamp).
func SignWebhook(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks a received webhook: the signature over ts and body
// and that ts is within maxSkew of now. Receivers written in Go can use it.
func VerifyWebhook(secret []byte, ts, sig string, body []byte, now time.Time, maxSkew time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("verifying webhook: timestamp %q is not Unix seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("verifying webhook: timestamp is %v away from now, beyond %v", d.Round(time.Second), maxSkew)
	}
	if !hmac.Equal([]byte(sig), []byte(SignWebhook(secret, ts, body))) {
		return errors.New("verifying webhook: signature does not match")
	}
	return nil
}

// Deliver POSTs a; any answer but 2xx is a failed attempt (retried).
func (w *webhookSink) Deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(EventOf(a))
	if err != nil {
		return fmt.Errorf("encoding alert %d: %w", a.ID, err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facewatch-alert-webhook")
	req.Header.Set(HeaderWebhookTimestamp, ts)
	req.Header.Set(HeaderWebhookSignature, SignWebhook(w.secret, ts, body))
	req.Header.Set(HeaderWebhookDelivery, a.HitID)
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting alert %d: %s", a.ID, config.RedactError(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting alert %d: receiver answered %s", a.ID, resp.Status)
	}
	return nil
}
