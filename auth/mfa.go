package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"tollgate/db"
)

// FactorType is a kind of second factor.
type FactorType string

// FactorTOTP is an authenticator app's time-based codes (RFC 6238).
const FactorTOTP FactorType = "TOTP"

// Factor is a second factor as its owner sees it: never its secret.
type Factor struct {
	ID           string
	Type         FactorType
	FriendlyName *string
	Verified     bool
	CreatedAt    time.Time
	LastUsedAt   *time.Time
}

// TotpEnrollment is what EnrollTOTP returns, once.
type TotpEnrollment struct {
	Factor Factor
	// Secret is the base32 secret (no padding); URI the otpauth:// URI that
	// carries it; QRCode that URI as a PNG data URI.
	Secret string
	URI    string
	QRCode string
}

// The rules of second factors (API.md, "Multi-factor authentication").
const (
	// MaxFactors bounds the factors of one user, verified or not.
	MaxFactors = 10
	// RecoveryCodeCount codes are issued at a time.
	RecoveryCodeCount = 10
	// totpSecretBytes is 160 bits, what RFC 4226 recommends for HMAC-SHA1.
	totpSecretBytes = 20
	// totpPeriod, totpDigits and SHA-1 are what every authenticator app supports.
	totpPeriod = 30 * time.Second
	totpDigits = otp.DigitsSix
	// recoveryCodeChars base32 characters carry 5 bits each: 60 random bits.
	recoveryCodeChars = 12
	maxFriendlyName   = 64
)

// totpOpts are the code parameters; codes are computed one step at a time
// (Skew 0) so that the step that matched is known and can be recorded.
var totpOpts = totp.ValidateOpts{Period: uint(totpPeriod / time.Second), Skew: 0, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// Reasons of the second factor.
const (
	ReasonMFARequired    = "MFA_REQUIRED"
	ReasonInvalidCode    = "INVALID_CODE"
	ReasonMFANotEnrolled = "MFA_NOT_ENROLLED"
)

// The errors of the second factor. A wrong code, a replayed one and a used
// recovery code are the same INVALID_CODE: telling them apart would only help
// whoever is guessing.
var (
	ErrMFARequired    = &Error{Code: CodeForbidden, Reason: ReasonMFARequired, Message: "This needs a second factor: verify a code first."}
	ErrInvalidCode    = &Error{Code: CodeBadUserInput, Reason: ReasonInvalidCode, Field: "code", Message: "The code is not valid."}
	ErrMFANotEnrolled = &Error{Code: CodeBadUserInput, Reason: ReasonMFANotEnrolled, Message: "This needs a verified second factor first."}
	ErrTooManyFactors = &Error{Code: CodeBadUserInput, Reason: ReasonLimitReached,
		Message: fmt.Sprintf("A user has at most %d factors: remove one first.", MaxFactors)}
)

// factorAAD binds a sealed secret to its factor: a ciphertext copied to
// another factor's row does not open.
func factorAAD(id string) []byte { return []byte("mfa factor " + id) }

// EnrollTOTP creates an unverified TOTP factor for the caller and returns its
// secret, the only time it is ever shown. The secret is stored sealed.
func (s *Service) EnrollTOTP(ctx context.Context, friendlyName *string) (*TotpEnrollment, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	var name *string
	if friendlyName != nil {
		n := strings.TrimSpace(*friendlyName)
		if utf8.RuneCountInString(n) > maxFriendlyName {
			return nil, invalidInput(ReasonInvalidInput, "friendlyName", fmt.Sprintf("friendlyName has at most %d characters.", maxFriendlyName))
		}
		if n != "" {
			name = &n
		}
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrTokenRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("enroll totp: %w", err)
	}
	if u.MFAEnabled && id.AAL != AAL2 {
		return nil, ErrMFARequired // see requireAAL2IfEnrolled
	}
	key, err := newTOTPKey(s.cfg.TOTPIssuer, u.Username)
	if err != nil {
		return nil, fmt.Errorf("enroll totp: %w", err)
	}
	now := s.clock()
	f := db.Factor{ID: newID(), UserID: id.UserID, Type: string(FactorTOTP), FriendlyName: name, CreatedAt: now}
	f.Secret = s.mfaSecrets.seal([]byte(key.Secret()), factorAAD(f.ID))
	if err := s.store.CreateFactor(ctx, f, MaxFactors); err != nil {
		if errors.Is(err, db.ErrLimitReached) {
			return nil, ErrTooManyFactors
		}
		return nil, fmt.Errorf("enroll totp: %w", err)
	}
	qr, err := qrDataURI(key)
	if err != nil {
		return nil, fmt.Errorf("enroll totp: %w", err)
	}
	return &TotpEnrollment{Factor: toFactor(f), Secret: key.Secret(), URI: key.URL(), QRCode: qr}, nil
}

// DefaultTOTPIssuer is the name authenticator apps show when TOTP_ISSUER is
// not set. It is not JWT_ISSUER: that is often a URL ("https://…" would show
// as "https"), and changing it to fix the name would invalidate every token.
const DefaultTOTPIssuer = "Tollgate"

// newTOTPKey draws a new secret and returns its key, whose otpauth:// URI
// follows Google's Key Uri Format: the label is issuer ":" account, each
// percent-encoded, and the issuer parameter repeats the issuer, so that an
// app that reads either shows the same name.
//
// totp.Generate builds the URI too, but puts both names into the path
// unescaped but for what a path must escape: a "/" or "+" stays as it is
// ("+" is a space to apps that decode the label as a form), and a ":" in the
// issuer moves the separator. The secret is drawn here for the same reason:
// Generate offers no way to pass the label it should use.
func newTOTPKey(issuer, account string) (*otp.Key, error) {
	secret := make([]byte, totpSecretBytes)
	rand.Read(secret) // never fails (crypto/rand documents that it panics instead)
	uri := "otpauth://totp/" + keyURIEscape(issuer) + ":" + keyURIEscape(account) +
		"?secret=" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret) +
		"&issuer=" + keyURIEscape(issuer) +
		"&algorithm=" + totpOpts.Algorithm.String() + "&digits=" + totpOpts.Digits.String() +
		"&period=" + strconv.FormatUint(uint64(totpOpts.Period), 10)
	return otp.NewKeyFromURL(uri)
}

// keyURIEscape percent-encodes s for the label or a parameter of an
// otpauth:// URI: everything but RFC 3986's unreserved characters, a space
// as %20 (the Key Uri Format's own example) rather than "+", which apps
// that follow RFC 3986 would show as a plus. A ":" is escaped too, though
// the format forbids it in either name (config refuses it in TOTP_ISSUER;
// usernames cannot hold one).
func keyURIEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// qrDataURI draws the key's otpauth:// URI as a PNG QR code (through the
// barcode library that pquerna/otp uses) in a data: URI.
func qrDataURI(key *otp.Key) (string, error) {
	img, err := key.Image(256, 256)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// Factors lists the caller's factors, oldest first.
func (s *Service) Factors(ctx context.Context) ([]Factor, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.Factors(ctx, id.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]Factor, len(rows))
	for i, r := range rows {
		out[i] = toFactor(r)
	}
	return out, nil
}

// mfaBucket counts the wrong codes (TOTP and recovery) of one user, in the
// database, so that every instance shares it. It is per user, not per
// address: whoever tries codes already holds the password (or a session),
// and 5 guesses in 15 minutes give a 6-digit code a 1 in 66,000 chance a day.
func (s *Service) mfaBucket(userID string) bucket {
	return bucket{key: "mfa-user:" + userID, limit: s.cfg.Limits.MFAPerUser}
}

// VerifyTOTP checks a code of one of the caller's factors and steps the
// caller's session up to AAL2, returning a new, fresh pair for the same
// session. A code is accepted for the current 30-second step and one step
// either side, and only for a step later than any accepted before for that
// factor: never twice, on any session or instance. The first accepted code
// of a factor verifies it and signs out every other session of the user.
//
// Wrong codes are counted per user before any check (as logins are), so
// that past the limit even the right code is RATE_LIMITED.
func (s *Service) VerifyTOTP(ctx context.Context, factorID, code string) (*Tokens, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if !ValidID(factorID) {
		return nil, ErrNotFound
	}
	f, err := s.store.FactorOf(ctx, id.UserID, factorID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("verify totp: %w", err)
	}
	if f.VerifiedAt == nil {
		// Completing the enrollment of another factor is what a password
		// alone must never do once a factor is verified: otherwise whoever
		// knows the password enrolls their own device and is at AAL2.
		if err := s.requireAAL2IfEnrolled(ctx, id); err != nil {
			return nil, err
		}
	}
	b := s.mfaBucket(id.UserID)
	if _, err := s.reserve(ctx, b); err != nil {
		return nil, err
	}
	secret, err := s.mfaSecrets.open(f.Secret, factorAAD(f.ID))
	if err != nil {
		// Sealed under another key (MFA_ENCRYPTION_KEY or the signing key
		// changed): this factor can no longer be checked.
		return nil, fmt.Errorf("verify totp: open secret of factor %s: %w", f.ID, err)
	}
	// Past any earlier cutoff: a first verification cuts off the other sessions.
	now := s.revocations.pastCutoff(id.UserID, s.clock())
	step, ok := matchStep(string(secret), code, now)
	if !ok {
		return nil, ErrInvalidCode // the attempt stays counted
	}
	rt, refresh := s.newRefreshToken(now, id.SessionID)
	methods := stepUpBase(id.Methods) | MethodOTP
	r, err := s.store.AcceptTOTP(ctx, id.UserID, f.ID, step, db.StepUp{SessionID: id.SessionID, AAL: AAL2.claim(), AMR: methods.String(), Next: rt, Now: now})
	if err != nil {
		return nil, s.stepUpError("verify totp", err)
	}
	if !r.Accepted {
		return nil, ErrInvalidCode // replayed: counted like a wrong code
	}
	if r.FirstVerification {
		s.revocations.CutOff(id.UserID, now, id.SessionID)
	}
	if err := s.store.ResetHits(ctx, b.key); err != nil {
		s.logger.Warn("could not reset the code throttle", "error", err.Error())
	}
	if r.FirstVerification {
		s.logger.Info("second factor verified: other sessions revoked", "user_id", id.UserID, "factor_id", f.ID,
			"request_id", ClientFromContext(ctx).RequestID)
	}
	return s.issue(toUser(r.User), r.Session.ID, refresh, r.Session.ExpiresAt, true, AAL2, methods)
}

// matchStep returns the time step (Unix time / 30 s) whose code is code,
// trying the current step, then the one before and the one after (clock
// drift and a code typed as it changes). Codes are compared in constant time.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != totpDigits.Length() {
		return 0, false
	}
	period := int64(totpPeriod / time.Second)
	current := now.Unix() / period
	for _, step := range []int64{current, current - 1, current + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*period, 0), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// requireAAL2IfEnrolled refuses an AAL1 token of a user who has a verified
// factor, reading the database rather than the token's mfa claim. @auth
// already refuses such tokens from their claims; this second check, for the
// few mutations that manage factors, also covers the one token whose claim
// is stale: the previous access token of the session that verified the first
// factor, which says mfa: false until it expires.
func (s *Service) requireAAL2IfEnrolled(ctx context.Context, id Identity) error {
	if id.AAL == AAL2 {
		return nil
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return ErrTokenRevoked
	}
	if err != nil {
		return fmt.Errorf("check level: %w", err)
	}
	if u.MFAEnabled {
		return ErrMFARequired
	}
	return nil
}

// stepUpError maps a failed step-up: the session was revoked or expired
// while the code was being checked.
func (s *Service) stepUpError(op string, err error) error {
	if errors.Is(err, db.ErrNotFound) {
		return ErrTokenRevoked
	}
	return fmt.Errorf("%s: %w", op, err)
}

// RemoveFactor deletes one of the caller's factors; another user's is
// NOT_FOUND. Removing the last verified factor deletes the recovery codes:
// the user is back to a password alone, and new sessions are AAL1 without
// mfaRequired.
func (s *Service) RemoveFactor(ctx context.Context, factorID string) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	if !ValidID(factorID) {
		return ErrNotFound
	}
	if err := s.requireAAL2IfEnrolled(ctx, id); err != nil {
		return err
	}
	err = s.store.DeleteFactor(ctx, id.UserID, factorID)
	if errors.Is(err, db.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("remove factor: %w", err)
	}
	s.logger.Info("second factor removed", "user_id", id.UserID, "factor_id", factorID, "request_id", ClientFromContext(ctx).RequestID)
	return nil
}

// GenerateRecoveryCodes returns RecoveryCodeCount new single-use codes for
// the caller, replacing any earlier set. Only their hashes are stored: they
// are shown this once.
func (s *Service) GenerateRecoveryCodes(ctx context.Context) ([]string, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.requireAAL2IfEnrolled(ctx, id); err != nil {
		return nil, err
	}
	codes := make([]string, RecoveryCodeCount)
	hashes := make([]string, RecoveryCodeCount)
	for i := range codes {
		// rand.Text is 26 base32 characters (130 bits); 12 of them are 60 bits.
		c := rand.Text()[:recoveryCodeChars]
		codes[i] = c[:4] + "-" + c[4:8] + "-" + c[8:]
		hashes[i] = hashRecoveryCode(c)
	}
	err = s.store.ReplaceRecoveryCodes(ctx, id.UserID, hashes, s.clock())
	if errors.Is(err, db.ErrNotEnrolled) {
		return nil, ErrMFANotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("generate recovery codes: %w", err)
	}
	return codes, nil
}

// UseRecoveryCode steps the caller's session up to AAL2 with one of their
// recovery codes, which is used up, like VerifyTOTP; wrong codes count
// against the same per-user limit.
func (s *Service) UseRecoveryCode(ctx context.Context, code string) (*Tokens, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	b := s.mfaBucket(id.UserID)
	if _, err := s.reserve(ctx, b); err != nil {
		return nil, err
	}
	normalized, ok := normalizeRecoveryCode(code)
	if !ok {
		return nil, ErrInvalidCode
	}
	now := s.clock()
	rt, refresh := s.newRefreshToken(now, id.SessionID)
	methods := stepUpBase(id.Methods) | MethodRecoveryCode
	r, err := s.store.UseRecoveryCode(ctx, id.UserID, hashRecoveryCode(normalized),
		db.StepUp{SessionID: id.SessionID, AAL: AAL2.claim(), AMR: methods.String(), Next: rt, Now: now})
	if err != nil {
		return nil, s.stepUpError("use recovery code", err)
	}
	if !r.Accepted {
		return nil, ErrInvalidCode
	}
	if err := s.store.ResetHits(ctx, b.key); err != nil {
		s.logger.Warn("could not reset the code throttle", "error", err.Error())
	}
	s.logger.Info("recovery code used", "user_id", id.UserID, "request_id", ClientFromContext(ctx).RequestID)
	return s.issue(toUser(r.User), r.Session.ID, refresh, r.Session.ExpiresAt, true, AAL2, methods)
}

// normalizeRecoveryCode accepts a code as shown or as typed: any case, with
// or without the dashes and spaces.
func normalizeRecoveryCode(code string) (string, bool) {
	if len(code) > 64 {
		return "", false
	}
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(c) != recoveryCodeChars {
		return "", false
	}
	for _, r := range c {
		if !(r >= 'A' && r <= 'Z' || r >= '2' && r <= '7') {
			return "", false
		}
	}
	return c, true
}

// hashRecoveryCode is what the database keeps of a recovery code. An
// unsalted SHA-256 is enough here, unlike for passwords: each code is 60
// bits chosen at random, not by a person, so there is no dictionary to try
// and no two users share a code; online guesses are throttled to 5 in 15
// minutes; and a copy of the table still needs the password too. A slow
// hash would buy nothing but CPU per attempt.
func hashRecoveryCode(normalized string) string {
	sum := sha256.Sum256([]byte(normalized))
	return hex.EncodeToString(sum[:])
}

// ResetMFA deletes every factor and recovery code of the user named
// username and signs out all their sessions, on every instance: the
// operator's remedy when a user has lost both their device and their codes.
// An unknown name is ErrNotFound.
func (s *Service) ResetMFA(ctx context.Context, username string) error {
	now := s.clock()
	if u, err := s.store.UserByUsername(ctx, strings.TrimSpace(username)); err == nil {
		now = s.revocations.pastCutoff(u.ID, now)
	}
	userID, err := s.store.ResetMFA(ctx, strings.TrimSpace(username), now)
	if errors.Is(err, db.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("reset mfa: %w", err)
	}
	s.revocations.CutOff(userID, now, "")
	s.logger.Info("second factors reset by the operator: every session revoked", "user_id", userID)
	return nil
}

func toFactor(f db.Factor) Factor {
	return Factor{ID: f.ID, Type: FactorType(f.Type), FriendlyName: f.FriendlyName, Verified: f.VerifiedAt != nil,
		CreatedAt: f.CreatedAt, LastUsedAt: f.LastUsedAt}
}
