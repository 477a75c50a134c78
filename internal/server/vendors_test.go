package server

// The tests load policies naming the registered kinds.
import _ "github.com/omnipresence/omnipresence/internal/vendors"
