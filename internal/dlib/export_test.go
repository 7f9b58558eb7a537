package dlib

// NewPortableHOG is NewHOG without the AVX2 copy, for comparing the two.
func NewPortableHOG() (*HOG, error) { return newHOG(false) }

// FilterPlane is filterPlane.
var FilterPlane = filterPlane

// HOGFeatures is hogFeatures.
var HOGFeatures = hogFeatures

// HOGPyramid is hogPyramid.
var HOGPyramid = hogPyramid
