package main

import (
	"context"
	"fmt"
)

// The commands below are filled in by later work; until then they say so.

func notBuilt(name string) func(context.Context, *env, []string) error {
	return func(context.Context, *env, []string) error {
		return fmt.Errorf("%w (command %s)", errNotBuilt, name)
	}
}

var (
	cmdRun         = notBuilt("run")
	cmdDetectStage = notBuilt("detect")
	cmdEmbedStage  = notBuilt("embed")
	cmdMatchStage  = notBuilt("match")
)
