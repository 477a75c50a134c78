package policy

// condition is a compiled rule test: a structured comparison or a CEL program.
type condition interface{}

// matchTest is one compiled activity match test.
type matchTest struct{}
