// Package e2e holds facewatch's end-to-end tests: the built binary's
// stages, run as real processes against a real NATS server, read a
// synthetic camera served over RTSP on loopback (real faces, ffmpeg H.264),
// with the real dlib models and real SQLite files, and the alerts stored
// are compared with the clip's ground truth. It has no code outside its
// tests and must not be imported.
package e2e
