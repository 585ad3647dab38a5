package probes

import "github.com/nodetune/nodetune/detect"

// classify is detect.Classify: what was being read, and the sentinel.
var classify = detect.Classify

// fail is classify as a detect.Err.
func fail(what string, err error) detect.Err { return detect.Fail(classify(what, err)) }
