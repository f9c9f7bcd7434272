package auth

import (
	"time"

	"github.com/google/uuid"
)

// ValidID reports whether id has the form of the ids Tollgate gives users,
// sessions and notes (a UUID in its 36-character form). An id of any other
// form names nothing, so callers answer NOT_FOUND without asking the database.
func ValidID(id string) bool {
	return len(id) == 36 && uuid.Validate(id) == nil
}

// newSessionID returns the id of a session created at at: a UUIDv7 (RFC
// 9562) whose time is at, to the microsecond (the sub-millisecond part in
// rand_a, as the RFC allows), the rest random. The id thus tells when its
// session was created, which is what lets a revocation of every session of a
// user before a moment be checked from the token alone (Revocations.Check).
// Built here because the library's NewV7 reads the wall clock, not the
// service's clock.
func newSessionID(at time.Time) string {
	id := uuid.New() // random, version 4: the version and time are set below
	us := at.UnixMicro()
	ms, sub := us/1000, us%1000
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	id[6] = 0x70 | byte(sub>>8)
	id[7] = byte(sub)
	return id.String()
}

// sessionCreatedAt returns the creation time a session id of newSessionID
// carries; false for an id of another form (the random ids of earlier builds).
func sessionCreatedAt(sid string) (time.Time, bool) {
	if len(sid) != 36 || sid[14] != '7' {
		return time.Time{}, false
	}
	id, err := uuid.Parse(sid)
	if err != nil {
		return time.Time{}, false
	}
	ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
	sub := int64(id[6]&0x0f)<<8 | int64(id[7])
	if sub >= 1000 {
		return time.Time{}, false
	}
	return time.UnixMicro(ms*1000 + sub).UTC(), true
}
