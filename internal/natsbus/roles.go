package natsbus

import (
	"fmt"
	"slices"

	"github.com/facewatch/facewatch/internal/wire"
)

// This file is the bus's permission table: which NATS identity (role) may
// publish and subscribe to what. It is derived from the topology beside it
// (topology.go) and is the one place permissions are declared: the embedded
// server, `facewatch nats init`'s server config and docs/pipeline.md's role
// table all come from it (TestRolesDocumented keeps the doc in step).
//
// Decisions:
//   - Streams (and KV buckets) are created and updated by the admin
//     identity only: `facewatch run`'s own server-side connection, or
//     `facewatch nats setup` against an external cluster. A stage identity
//     may read a stream's info (EnsureStreams checks the declaration first
//     and creates nothing when it matches), never create, update, delete or
//     purge one. A stream's config decides what it captures and keeps, so
//     the right to change it is the right to read or drop any subject.
//   - A stage may create and use consumers only on the streams it reads.
//   - Each role has its own inbox prefix (_INBOX_<role>), so that replies
//     and consumer deliveries to one role (hits with their crops, gallery
//     events) cannot be read by another.

// Role is a NATS identity of one kind of facewatch process.
type Role string

// The roles. Camera and detect are the edge roles: they run beside the
// cameras, on the least trusted hosts.
const (
	RoleCamera  Role = "camera"
	RoleDetect  Role = "detect"
	RoleMatch   Role = "match"
	RoleAlert   Role = "alert"
	RoleCurator Role = "curator"
	RoleAdmin   Role = "admin"
)

// Roles lists every role, in the order of the permission table.
func Roles() []Role {
	return []Role{RoleCamera, RoleDetect, RoleMatch, RoleAlert, RoleCurator, RoleAdmin}
}

// ParseRole checks that s names a role.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles(), r) {
		return "", fmt.Errorf("nats role %q is not one of camera, detect, match, alert, curator, admin", s)
	}
	return r, nil
}

// InboxPrefix is the role's reply-subject prefix (nats.CustomInboxPrefix).
func (r Role) InboxPrefix() string { return "_INBOX_" + string(r) }

// Permission is one role's row of the permission table.
type Permission struct {
	Role Role
	// Purpose says who uses the identity.
	Purpose string
	// Publish and Subscribe are the subjects allowed (NATS wildcards);
	// everything else is denied by the server.
	Publish   []string
	Subscribe []string
	// DenyPublish is denied even where Publish allows it: stream deletion
	// and purging for every stage role, so that widening a role's Publish
	// later cannot hand it the power to drop a stream.
	DenyPublish []string
	// AllowResponses lets the role answer requests it received (one reply
	// each, to the requester's reply subject) without a standing right to
	// publish to other roles' inboxes: the detect stage answering the
	// matcher's crop requests.
	AllowResponses bool
}

// PermissionOptions are the config values the table depends on.
type PermissionOptions struct {
	// AlertSubjectPrefix is alert.sinks.mqtt.subject_prefix: on the
	// embedded server's MQTT listener the alert service's publisher user
	// (MQTTPublisherUser) may publish under it and MQTT subscribers
	// (MQTTUser) may read it. No NATS role publishes there.
	AlertSubjectPrefix string
}

// JetStream API subjects, as nats-server names them.
const (
	jsAPI     = "$JS.API"
	jsAck     = "$JS.ACK"
	jsFC      = "$JS.FC"
	kvPrefix  = "$KV"
	jsDenyDel = jsAPI + ".STREAM.DELETE.>"
	jsDenyPrg = jsAPI + ".STREAM.PURGE.>"
	jsMDel    = jsAPI + ".STREAM.MSG.DELETE."
)

// declaredStreams names every stream of the topology.
func declaredStreams() []string {
	var names []string
	for _, c := range Streams(Topology{}) {
		names = append(names, c.Name)
	}
	return names
}

// denyMsgDelete denies deleting single messages from every stream but
// except (the gallery's publishers delete a purged person's descriptor
// events from the gallery stream) and from the lease bucket.
func denyMsgDelete(except ...string) []string {
	var d []string
	for _, n := range append(declaredStreams(), "KV_"+CameraLeaseBucket) {
		if !slices.Contains(except, n) {
			d = append(d, jsMDel+n)
		}
	}
	return d
}

// streamInfo lets a role read the declaration and state of the given
// streams (EnsureStreams checks every stream).
func streamInfo(streams ...string) []string {
	var s []string
	for _, n := range streams {
		s = append(s, jsAPI+".STREAM.INFO."+n)
	}
	return s
}

// consume lets a role create, inspect, read from and delete its consumers
// on stream, and acknowledge what it read.
func consume(stream string) []string {
	return []string{
		jsAPI + ".CONSUMER.CREATE." + stream,
		jsAPI + ".CONSUMER.CREATE." + stream + ".>",
		jsAPI + ".CONSUMER.DURABLE.CREATE." + stream + ".>",
		jsAPI + ".CONSUMER.INFO." + stream + ".>",
		jsAPI + ".CONSUMER.MSG.NEXT." + stream + ".>",
		jsAPI + ".CONSUMER.DELETE." + stream + ".>",
		jsAck + "." + stream + ".>",
		jsFC + "." + stream + ".>",
	}
}

// leases lets a role use the camera lease bucket (get, put, watch); the
// bucket itself is created by the admin identity.
func leases() []string {
	kv := "KV_" + CameraLeaseBucket
	return append([]string{
		kvPrefix + "." + CameraLeaseBucket + ".>",
		jsAPI + ".STREAM.INFO." + kv,
		jsAPI + ".STREAM.MSG.GET." + kv,
		jsAPI + ".DIRECT.GET." + kv,
		jsAPI + ".DIRECT.GET." + kv + ".>",
	}, consume(kv)...)
}

// Permissions is the permission table: one row per role.
func Permissions(o PermissionOptions) []Permission {
	allStreams := streamInfo(declaredStreams()...)
	inbox := func(r Role) string { return r.InboxPrefix() + ".>" }
	deny := append([]string{jsDenyDel, jsDenyPrg}, denyMsgDelete()...)
	// The gallery's publishers may delete single gallery events: a purged
	// or found person's descriptor must leave the stream too.
	galleryDeny := append([]string{jsDenyDel, jsDenyPrg}, denyMsgDelete(wire.GalleryStream)...)
	galleryDel := []string{jsMDel + wire.GalleryStream, jsAPI + ".STREAM.MSG.GET." + wire.GalleryStream}
	return []Permission{
		{
			Role:    RoleCamera,
			Purpose: "`facewatch camera` (edge): frames and camera health",
			Publish: append([]string{wire.FramesWildcard, wire.StatusWildcard, wire.DeadLetterSubject("camera")},
				leases()...),
			Subscribe:   []string{inbox(RoleCamera), kvPrefix + "." + CameraLeaseBucket + ".>"},
			DenyPublish: deny,
		},
		{
			Role:    RoleDetect,
			Purpose: "`facewatch detect` (edge): frames in, track reports out",
			Publish: slices.Concat([]string{wire.TracksWildcard, wire.DeadLetterSubject("detect")},
				allStreams, leases()),
			Subscribe:      []string{wire.FramesWildcard, wire.CropsWildcard, inbox(RoleDetect), kvPrefix + "." + CameraLeaseBucket + ".>"},
			DenyPublish:    deny,
			AllowResponses: true,
		},
		{
			Role:    RoleMatch,
			Purpose: "`facewatch match`: track reports in, hits out; publishes the gallery outbox of the gallery file it holds",
			Publish: slices.Concat([]string{wire.HitsWildcard, wire.GalleryEvents, wire.CropsWildcard, wire.AuditWildcard, wire.DeadLetterSubject("match")},
				allStreams, consume(wire.TracksStream), consume(wire.GalleryStream), galleryDel),
			Subscribe:   []string{inbox(RoleMatch)},
			DenyPublish: galleryDeny,
		},
		{
			Role:    RoleAlert,
			Purpose: "`facewatch alert`: hits and camera health in (its MQTT sink publishes as an MQTT client, not as this role)",
			Publish: slices.Concat([]string{wire.DeadLetterSubject("alert"), wire.AuditWildcard},
				allStreams, consume(wire.HitsStream)),
			Subscribe:   []string{inbox(RoleAlert), wire.StatusWildcard},
			DenyPublish: deny,
		},
		{
			Role:        RoleCurator,
			Purpose:     "`facewatch enroll` and `watchlist` against an external cluster: gallery events",
			Publish:     slices.Concat([]string{wire.GalleryEvents, wire.AuditWildcard}, allStreams, galleryDel),
			Subscribe:   []string{inbox(RoleCurator)},
			DenyPublish: galleryDeny,
		},
		{
			Role:      RoleAdmin,
			Purpose:   "`facewatch nats setup`, `facewatch run`'s own connection, operators' `nats` tools: everything, streams included",
			Publish:   []string{">"},
			Subscribe: []string{">"},
		},
	}
}

// PermissionFor returns role's row of Permissions(o).
func PermissionFor(o PermissionOptions, role Role) (Permission, bool) {
	for _, p := range Permissions(o) {
		if p.Role == role {
			return p, true
		}
	}
	return Permission{}, false
}
