package models

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnvDir is the environment variable that names the model directory.
const EnvDir = "FACEWATCH_MODEL_DIR"

// Source says where a model directory was chosen from.
type Source string

// The places a model directory comes from, in order of precedence.
const (
	FromFlag   Source = "flag"
	FromEnv    Source = "env " + EnvDir
	FromConfig Source = "config model_dir"
	FromCache  Source = "user cache"
)

// Locate picks the model directory: the flag value, then $FACEWATCH_MODEL_DIR,
// then the config's model_dir, then the per-user cache directory (so that
// fresh clones reuse verified files). getenv is os.Getenv in production.
func Locate(flagDir, configDir string, getenv func(string) string) (string, Source, error) {
	if flagDir != "" {
		return flagDir, FromFlag, nil
	}
	if v := getenv(EnvDir); v != "" {
		return v, FromEnv, nil
	}
	if configDir != "" {
		return configDir, FromConfig, nil
	}
	d, err := CacheDir(getenv)
	if err != nil {
		return "", "", err
	}
	return d, FromCache, nil
}

// CacheDir is the per-user cache directory for models:
// $XDG_CACHE_HOME/facewatch/models or ~/.cache/facewatch/models.
func CacheDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CACHE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "facewatch", "models"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the user cache directory: %w (set %s)", err, EnvDir)
		}
		home = h
	}
	return filepath.Join(home, ".cache", "facewatch", "models"), nil
}
