package auth

import "github.com/google/uuid"

// ValidID reports whether id has the form of the ids Tollgate gives users,
// sessions and notes (a UUID in its 36-character form). An id of any other
// form names nothing, so callers answer NOT_FOUND without asking the database.
func ValidID(id string) bool {
	return len(id) == 36 && uuid.Validate(id) == nil
}
