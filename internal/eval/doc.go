// Package eval measures how well descriptors separate people and
// recommends match thresholds: it reads labelled sets (go-face's JSON or a
// directory of photos, through internal/enroll), computes genuine and
// impostor distances, ROC, EER and open-set FPIR per gallery size, and
// plots them with gonum. It is a tool for `facewatch eval`; the matcher
// (package match) must not import it.
package eval
