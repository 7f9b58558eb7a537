package main

import (
	"context"
	"time"

	"github.com/facewatch/facewatch/camera"
	"github.com/facewatch/facewatch/detect"
	"github.com/facewatch/facewatch/internal/audit"
	"github.com/facewatch/facewatch/internal/config"
	"github.com/facewatch/facewatch/internal/natsbus"
	"github.com/facewatch/facewatch/internal/pipeline"
	"github.com/facewatch/facewatch/internal/track"
	"github.com/facewatch/facewatch/match"
)

// trackConfig is the tracker's configuration from the detect section and
// the configured cameras: a track ends after detect.track_gap, or several
// frame intervals of the slowest camera if longer.
func trackConfig(cfg config.Config) track.Config {
	tc := track.DefaultConfig()
	tc.MaxGap = cfg.Detect.TrackGap
	tc.GoodQuality, tc.GoodSide = cfg.Detect.EarlyQuality, cfg.Detect.EarlyFaceSize
	tc.LinkGap = cfg.Detect.AppearanceGap
	for _, c := range cfg.Cameras {
		if c.MaxFPS > 0 {
			tc.MaxGap = max(tc.MaxGap, time.Duration(5*float64(time.Second)/c.MaxFPS))
		}
	}
	return tc
}

// lifecycle is how the running matcher purges expired gallery entries.
func (s *stage) lifecycle() match.LifecycleOptions {
	return match.LifecycleOptions{Grace: s.cfg.Match.PurgeGrace, Interval: s.cfg.Match.PurgeInterval,
		Actor: "lifecycle sweep", AuditDetailRetention: s.cfg.Match.AuditDetailRetention}
}

// matchParts opens the gallery and its index for a match stage.
func (s *stage) matchParts(ctx context.Context, bus *natsbus.Bus) (*match.Gallery, *match.Index, error) {
	// The gallery's audit keys: the lifecycle sweep's purges are audited
	// in their own transactions, as the system.
	keys, err := auditKeys(s.cfg)
	if err != nil {
		return nil, nil, err
	}
	g, err := match.OpenGallery(ctx, s.cfg.DataDir, match.GalleryOptions{Logger: s.log, Audit: keys,
		Actor: audit.Actor{ID: "system:lifecycle", Name: "lifecycle sweep", Role: "system"}})
	if err != nil {
		return nil, nil, err
	}
	idx := match.NewIndex(s.cfg.Match, match.IndexOptions{Gallery: g, JetStream: bus.JS, Replicas: s.cfg.NATS.Replicas, Logger: s.log})
	return g, idx, nil
}

func (s *stage) newMatchStage(bus *natsbus.Bus, g *match.Gallery, idx *match.Index) (*pipeline.MatchStage, error) {
	return pipeline.NewMatchStage(pipeline.MatchOptions{
		Bus: bus, Decider: idx, Ready: idx.Ready(), Photos: g, AckWait: s.cfg.NATS.AckWait,
		Topology: natsbus.TopologyOf(s.cfg), Logger: s.log, Metrics: s.pm,
	})
}

func (s *stage) newDetectStage(e *env, bus *natsbus.Bus, local <-chan pipeline.Frame, leases *pipeline.Leases) (*pipeline.DetectStage, error) {
	dir, err := s.modelDir(e)
	if err != nil {
		return nil, err
	}
	return pipeline.NewDetectStage(pipeline.DetectOptions{
		Bus: bus, Models: dir, Detect: s.cfg.Detect, Embed: s.cfg.Embed, Track: trackConfig(s.cfg),
		Local: local, Leases: leases, Topology: natsbus.TopologyOf(s.cfg), CropTTL: s.cfg.Alert.UnmatchedRetention, Logger: s.log, Metrics: s.pm,
		Faces: cameraFaces(s.cfg),
	})
}

// cameraFaces is each configured camera's face size range.
func cameraFaces(cfg config.Config) map[string]detect.FaceRange {
	out := make(map[string]detect.FaceRange, len(cfg.Cameras))
	for _, c := range cfg.Cameras {
		lo, hi := c.Faces(cfg.Detect)
		out[c.ID] = detect.FaceRange{Min: lo, Max: hi}
	}
	return out
}

func (s *stage) newCameraStage(bus *natsbus.Bus, local chan<- pipeline.Frame, leases *pipeline.Leases) (*pipeline.CameraStage, error) {
	cm, err := camera.NewMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	return pipeline.NewCameraStage(pipeline.CameraOptions{Bus: bus, Cameras: s.cfg.Cameras, Local: local, Leases: leases, Logger: s.log, CameraMetrics: cm, Metrics: s.pm})
}
