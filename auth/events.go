package auth

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Events is told what the Service does, so that an operator can count it
// (api implements it with Prometheus). The domain knows no metrics library:
// it reports small enumerations, never a username, an address or a token.
// Implementations must be safe for concurrent use and cheap: TokenVerified
// runs on every authenticated request.
type Events interface {
	// Attempt reports how a login, registration, refresh or logout ended.
	Attempt(a Action, o Outcome)
	// TokenVerified reports the outcome of one access-token verification.
	TokenVerified(v Verification)
	// RevocationNotice reports a revocation notification received from the
	// database. lag is the time from the revocation's write to its arrival
	// here; dated is false for a payload that carries no time (one sent by
	// an older build), and then lag is zero.
	RevocationNotice(kind NoticeKind, lag time.Duration, dated bool)
}

// NoEvents is the Events that counts nothing: the default.
type NoEvents struct{}

// Attempt does nothing.
func (NoEvents) Attempt(Action, Outcome) {}

// TokenVerified does nothing.
func (NoEvents) TokenVerified(Verification) {}

// RevocationNotice does nothing.
func (NoEvents) RevocationNotice(NoticeKind, time.Duration, bool) {}

// Action is what a client attempted.
type Action uint8

// The actions that Events.Attempt reports.
const (
	ActionLogin Action = iota
	ActionRegister
	ActionRefresh
	ActionLogout
	// NumActions is the number of actions, for tables indexed by Action.
	NumActions
)

var actionNames = [NumActions]string{"login", "register", "refresh", "logout"}

// String is the action's metric label.
func (a Action) String() string {
	if a < NumActions {
		return actionNames[a]
	}
	return "unknown"
}

// Outcome is how an attempt ended: a bounded set, so that it can be a label.
type Outcome uint8

// The outcomes of an attempt.
const (
	OutcomeSuccess Outcome = iota
	OutcomeInvalidCredentials
	OutcomeRateLimited
	OutcomeRefreshInvalid
	OutcomeReuseDetected
	OutcomeSignupClosed
	OutcomeUsernameTaken
	OutcomeInvalidInput
	OutcomeUnauthenticated
	OutcomeError
	// NumOutcomes is the number of outcomes, for tables indexed by Outcome.
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	"success", "invalid_credentials", "rate_limited", "refresh_invalid", "reuse_detected",
	"signup_closed", "username_taken", "invalid_input", "unauthenticated", "error",
}

// String is the outcome's metric label.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// outcomeOf classifies the error an attempt returned.
func outcomeOf(err error) Outcome {
	var e *Error
	if err == nil {
		return OutcomeSuccess
	}
	if !errors.As(err, &e) {
		return OutcomeError
	}
	switch {
	case e.Code == CodeRateLimited:
		return OutcomeRateLimited
	case e.Reason == ReasonInvalidCredentials:
		return OutcomeInvalidCredentials
	case e.Reason == ReasonRefreshTokenInvalid:
		return OutcomeRefreshInvalid
	case e.Reason == ReasonSignupClosed:
		return OutcomeSignupClosed
	case e.Reason == ReasonUsernameTaken:
		return OutcomeUsernameTaken
	case e.Code == CodeBadUserInput:
		return OutcomeInvalidInput
	case e.Code == CodeUnauthenticated:
		return OutcomeUnauthenticated
	}
	return OutcomeError
}

// Verification is the outcome of verifying an access token.
type Verification uint8

// The outcomes of a verification (the reasons of UNAUTHENTICATED, and valid).
const (
	VerifyValid Verification = iota
	VerifyMissing
	VerifyInvalid
	VerifyExpired
	VerifyRevoked
	// NumVerifications is the number of outcomes, for tables indexed by Verification.
	NumVerifications
)

var verificationNames = [NumVerifications]string{"valid", "missing", "invalid", "expired", "revoked"}

// String is the verification's metric label.
func (v Verification) String() string {
	if v < NumVerifications {
		return verificationNames[v]
	}
	return "unknown"
}

// verificationOf classifies what Verify returned. Every error it returns is
// an *Error, so a type assertion suffices: no allocation on this path.
func verificationOf(err error) Verification {
	if err == nil {
		return VerifyValid
	}
	e, _ := err.(*Error)
	if e == nil {
		return VerifyInvalid
	}
	switch e.Reason {
	case ReasonTokenMissing:
		return VerifyMissing
	case ReasonTokenExpired:
		return VerifyExpired
	case ReasonTokenRevoked:
		return VerifyRevoked
	}
	return VerifyInvalid
}

// NoticeKind is what a revocation notification announced.
type NoticeKind uint8

// The kinds of revocation notification.
const (
	NoticeSession NoticeKind = iota
	NoticeRole
	// NoticeUserSessions announces every session of a user but one (a cutoff).
	NoticeUserSessions
	// NoticeUnknown is a payload this build does not understand.
	NoticeUnknown
	// NumNoticeKinds is the number of kinds, for tables indexed by NoticeKind.
	NumNoticeKinds
)

var noticeKindNames = [NumNoticeKinds]string{"session", "role", "sessions", "unknown"}

// String is the kind's metric label.
func (k NoticeKind) String() string {
	if k < NumNoticeKinds {
		return noticeKindNames[k]
	}
	return "unknown"
}

// notice is a parsed revocation payload.
type notice struct {
	kind          NoticeKind
	id, role      string
	except        string // the session a cutoff excepts
	sent          time.Time
	dated, usable bool
}

// parseNotice reads "session <id> [<unix µs>]", "sessions <user id> <unix
// µs> [<except>]" or "role <user id> <role> [<unix µs>]" (db.SessionNotice,
// db.UserSessionsNotice, db.RoleNotice). The time is optional so
// that a payload from an older build, which has none, still applies; a time
// that does not parse is ignored rather than the revocation dropped.
func parseNotice(payload string) notice {
	fields := strings.Fields(payload)
	n := notice{kind: NoticeUnknown}
	if len(fields) == 0 {
		return n
	}
	var stamp []string
	switch {
	case fields[0] == "session" && (len(fields) == 2 || len(fields) == 3):
		n.kind, n.id, n.usable, stamp = NoticeSession, fields[1], true, fields[2:]
	case fields[0] == "sessions" && (len(fields) == 3 || len(fields) == 4):
		// Its time decides which sessions it covers: without one it is
		// unusable.
		n.kind, n.id, stamp = NoticeUserSessions, fields[1], fields[2:3]
		if len(fields) == 4 {
			n.except = fields[3]
		}
	case fields[0] == "role" && (len(fields) == 3 || len(fields) == 4) && Role(fields[2]).Valid():
		n.kind, n.id, n.role, n.usable, stamp = NoticeRole, fields[1], fields[2], true, fields[3:]
	default:
		return n
	}
	if len(stamp) == 1 {
		if us, err := strconv.ParseInt(stamp[0], 10, 64); err == nil && us > 0 {
			n.sent, n.dated = time.UnixMicro(us).UTC(), true
		}
	}
	if n.kind == NoticeUserSessions {
		n.usable = n.dated
	}
	return n
}

// errReuseDetected is what a client sees of a reused refresh token
// (REFRESH_TOKEN_INVALID, like any unusable one: telling them apart would
// help only a thief), with a cause that lets the count tell them apart.
var errReuseDetected = &Error{Code: ErrRefreshTokenInvalid.Code, Reason: ErrRefreshTokenInvalid.Reason,
	Message: ErrRefreshTokenInvalid.Message, Err: errors.New("refresh token reused after rotation")}

// attemptOutcome is outcomeOf, telling a detected reuse apart.
func attemptOutcome(err error) Outcome {
	if err != nil && errors.Is(err, errReuseDetected.Err) {
		return OutcomeReuseDetected
	}
	return outcomeOf(err)
}

// Login checks a username and password and opens a new session. A wrong
// username and a wrong password give the same error after the same work.
func (s *Service) Login(ctx context.Context, username, password string) (*Tokens, error) {
	t, err := s.login(ctx, username, password)
	s.events.Attempt(ActionLogin, attemptOutcome(err))
	return t, err
}

// LoginWithPasskey signs in with a passkey (loginWithPasskey); it counts
// as a login.
func (s *Service) LoginWithPasskey(ctx context.Context, response []byte) (*Tokens, error) {
	t, err := s.loginWithPasskey(ctx, response)
	s.events.Attempt(ActionLogin, attemptOutcome(err))
	return t, err
}

// Register creates a USER and signs it in.
func (s *Service) Register(ctx context.Context, username, password string, email *string) (*Tokens, error) {
	t, err := s.register(ctx, username, password, email)
	s.events.Attempt(ActionRegister, attemptOutcome(err))
	return t, err
}

// Refresh trades a refresh token for a new pair in the same session and
// retires it (rotation), under the grace rule described at refresh.
func (s *Service) Refresh(ctx context.Context, token string) (*Tokens, error) {
	t, err := s.refresh(ctx, token)
	s.events.Attempt(ActionRefresh, attemptOutcome(err))
	return t, err
}

// Logout revokes the caller's session, or every session of the caller.
func (s *Service) Logout(ctx context.Context, allSessions bool) error {
	err := s.logout(ctx, allSessions)
	s.events.Attempt(ActionLogout, attemptOutcome(err))
	return err
}
