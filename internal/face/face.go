// Package face holds the face types the stages share: the aligned chip
// that detect cuts and embed reads, the quality score, and a detected face
// with its box and landmarks. It is a leaf: it imports only the standard
// library, and it must not detect, embed or compare faces (packages
// detect, embed and match do) nor know about cameras, NATS or storage.
package face

import "image"

// ChipSize is the side of an aligned chip in pixels, and ChipPadding the
// padding around the face, as in dlib's dnn_face_recognition_ex.cpp and
// go-face: get_face_chip_details(shape, 150, 0.25).
const (
	ChipSize    = 150
	ChipPadding = 0.25
	// ChipBytes is the length of Chip.Pix.
	ChipBytes = ChipSize * ChipSize * 3
)

// Chip is an aligned face: ChipSize×ChipSize RGB pixels, row-major.
type Chip struct{ Pix []byte }

// Quality says how useful a face is for recognition. Every field is in
// [0, 1], higher is better: Size grows with the box side up to 100 pixels,
// Sharpness with the variance of the chip's Laplacian, Frontalness with how
// centred the nose is between the eyes. Score combines them (their
// geometric mean) so later stages can pick the best faces of a track.
type Quality struct {
	Score       float64 `json:"score"`
	Size        float64 `json:"size"`
	Sharpness   float64 `json:"sharpness"`
	Frontalness float64 `json:"frontalness"`
}

// Face is one detected face.
type Face struct {
	// Box is the detector's box in full-resolution frame pixels; it may
	// extend past the frame's edges, as dlib's boxes do.
	Box image.Rectangle
	// Landmarks are dlib's 5 points (two corners of each eye, then the base
	// of the nose) in full-resolution frame pixels.
	Landmarks [5]image.Point
	// Confidence is the detector's score (HOG: SVM margin; CNN: MMOD
	// confidence); 0 is dlib's threshold.
	Confidence float64
	Quality    Quality
	Chip       Chip
}
