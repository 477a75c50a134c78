package policy

// The tests load policies naming every registered kind.
import _ "github.com/omnipresence/omnipresence/internal/vendors"
