// Package deploy holds no code: it is where facewatch's deployment files
// live (the example config, the edge profile, the three-node NATS cluster,
// systemd units, the container file and the compose file), and its tests
// check them with the tools that will read them (nats-server -t,
// systemd-analyze verify, facewatch's config loader, a container builder
// where one runs). See docs/deploy.md.
package deploy
