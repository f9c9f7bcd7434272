package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"tollgate/db"
)

// FactorWebAuthn is a passkey: a WebAuthn credential, discoverable and
// user-verifying, registered with registerPasskey.
const FactorWebAuthn FactorType = "WEBAUTHN"

// PasskeyConfig is the WebAuthn relying party.
type PasskeyConfig struct {
	// RPID is the relying party's id (WEBAUTHN_RP_ID), a domain; empty
	// means "localhost".
	RPID string
	// Origins are the exact origins a ceremony may come from
	// (WEBAUTHN_ORIGINS); empty means http://localhost:8080.
	Origins []string
	// Name is the relying party's name that authenticators show; empty
	// means TOTPIssuer.
	Name string
}

// The rules of passkey ceremonies (API.md, "Passkeys (WebAuthn)").
const (
	// ChallengeTTL is how long a ceremony's challenge may be answered.
	ChallengeTTL = 5 * time.Minute
	// MaxPasskeyJSONBytes bounds a WebAuthn JSON value, checked where it
	// enters (graph/scalar) before anything parses it. A response with a
	// packed attestation and its certificate chain is a few kilobytes; 64 KiB
	// leaves room for any real one and keeps the CBOR parser's input small.
	MaxPasskeyJSONBytes = 64 << 10
)

// passkeyLog is the one message of every refused ceremony; "check" says
// which check refused it. The client learns nothing of it.
const passkeyLog = "passkey refused"

// newWebAuthn builds the relying party from cfg. Options ask for a
// discoverable (resident) key that verifies its user, and for no
// attestation: Tollgate keeps no list of trusted authenticator models, so an
// attestation statement would prove nothing it acts on, and asking for one
// makes some browsers show a privacy prompt.
//
// The library's own timeouts are not enforced: it would read time.Now,
// while the challenge's expiry is kept in the database and checked against
// the Service's clock.
func newWebAuthn(cfg PasskeyConfig) (*webauthn.WebAuthn, error) {
	if cfg.RPID == "" {
		cfg.RPID = "localhost"
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = []string{"http://localhost:8080"}
	}
	required := true
	w, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.Name,
		RPOrigins:             cfg.Origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: &required,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL},
			Registration: webauthn.TimeoutConfig{Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn relying party: %w", err)
	}
	return w, nil
}

// passkeyUser is a user as the library sees it. Its user handle is the
// user's id (a UUID): stable, unique, and no personal data, as the
// specification asks; a discoverable login finds the user from it.
type passkeyUser struct {
	u     db.User
	creds []webauthn.Credential
}

func (p *passkeyUser) WebAuthnID() []byte                         { return []byte(p.u.ID) }
func (p *passkeyUser) WebAuthnName() string                       { return p.u.Username }
func (p *passkeyUser) WebAuthnDisplayName() string                { return p.u.Username }
func (p *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return p.creds }

var b64 = base64.RawURLEncoding

// loadPasskeyUser returns u with every credential it has.
func (s *Service) loadPasskeyUser(ctx context.Context, u db.User) (*passkeyUser, []db.Passkey, error) {
	rows, err := s.store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	pu := &passkeyUser{u: u}
	for _, r := range rows {
		c, err := toCredential(r)
		if err != nil {
			return nil, nil, fmt.Errorf("passkey %s: %w", r.FactorID, err)
		}
		pu.creds = append(pu.creds, c)
	}
	return pu, rows, nil
}

func toCredential(r db.Passkey) (webauthn.Credential, error) {
	id, err := b64.DecodeString(r.CredentialID)
	if err != nil {
		return webauthn.Credential{}, err
	}
	pk, err := b64.DecodeString(r.PublicKey)
	if err != nil {
		return webauthn.Credential{}, err
	}
	aaguid, err := uuid.Parse(r.AAGUID)
	if err != nil {
		return webauthn.Credential{}, err
	}
	c := webauthn.Credential{
		ID: id, PublicKey: pk, AttestationType: r.AttestationType, AttestationFormat: r.AttestationFormat,
		Flags: webauthn.CredentialFlags{UserPresent: r.UserPresent, UserVerified: r.UserVerified,
			BackupEligible: r.BackupEligible, BackupState: r.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: aaguid[:], SignCount: uint32(r.SignCount)},
	}
	for _, t := range strings.Split(r.Transports, ",") {
		if t != "" {
			c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
		}
	}
	return c, nil
}

// challengeHash is what the database keeps of a challenge: enough to find
// it again from a response, not to answer it.
func challengeHash(challenge string) string {
	sum := sha256.Sum256([]byte(challenge))
	return hex.EncodeToString(sum[:])
}

// saveChallenge stores the library's record of a ceremony begun.
func (s *Service) saveChallenge(ctx context.Context, ceremony string, sd *webauthn.SessionData, userID, sessionID *string) error {
	data, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	now := s.clock()
	return s.store.CreateChallenge(ctx, db.Challenge{Hash: challengeHash(sd.Challenge), Ceremony: ceremony,
		UserID: userID, SessionID: sessionID, SessionData: string(data), CreatedAt: now, ExpiresAt: now.Add(ChallengeTTL)})
}

// takeChallenge takes, once, the live challenge of ceremony that
// clientChallenge (from the response's client data) names. An unknown,
// used, expired or other ceremony's challenge is errRefused with a check
// name for the log.
func (s *Service) takeChallenge(ctx context.Context, ceremony, clientChallenge string) (db.Challenge, webauthn.SessionData, error) {
	var sd webauthn.SessionData
	c, err := s.store.TakeChallenge(ctx, challengeHash(clientChallenge))
	if errors.Is(err, db.ErrNotFound) {
		return c, sd, refused("challenge_unknown_or_used", nil)
	}
	if err != nil {
		return c, sd, err
	}
	if c.Ceremony != ceremony {
		return c, sd, refused("challenge_of_another_ceremony", nil)
	}
	if !s.clock().Before(c.ExpiresAt) {
		return c, sd, refused("challenge_expired", nil)
	}
	if err := json.Unmarshal([]byte(c.SessionData), &sd); err != nil {
		return c, sd, fmt.Errorf("read challenge: %w", err)
	}
	return c, sd, nil
}

// refusal is a ceremony refused by one of its checks: the caller answers
// with its contract error and logs the check.
type refusal struct {
	check string
	err   error
}

func (r *refusal) Error() string {
	if r.err != nil {
		return r.check + ": " + r.err.Error()
	}
	return r.check
}

func refused(check string, err error) error { return &refusal{check: check, err: err} }

// logRefusal logs why a ceremony was refused; the library's detail
// (protocol.Error's DevInfo) is for the log only.
func (s *Service) logRefusal(ctx context.Context, op string, err error, userID string) {
	var r *refusal
	if !errors.As(err, &r) {
		return
	}
	attrs := []any{"op", op, "check", r.check, "request_id", ClientFromContext(ctx).RequestID}
	if userID != "" {
		attrs = append(attrs, "user_id", userID)
	}
	var perr *protocol.Error
	if errors.As(r.err, &perr) {
		attrs = append(attrs, "detail", perr.Details, "info", perr.DevInfo)
	} else if r.err != nil {
		attrs = append(attrs, "detail", r.err.Error())
	}
	level := s.logger.Info
	if r.check == "sign_count_not_advanced" {
		level = s.logger.Warn // a possible clone
	}
	level(passkeyLog, attrs...)
}

// PasskeyRegistrationOptions begins the registration of a passkey for the
// caller: PublicKeyCredentialCreationOptionsJSON, the options object itself,
// with the caller's existing credentials excluded. Once a factor is
// verified, only an AAL2 session may add one (a password alone never adds a
// factor).
func (s *Service) PasskeyRegistrationOptions(ctx context.Context) (json.RawMessage, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrTokenRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("passkey registration options: %w", err)
	}
	if u.MFAEnabled && id.AAL != AAL2 {
		return nil, ErrMFARequired
	}
	// Each call stores a challenge: counted per user, with the limit of
	// login attempts, so that one account cannot fill the table.
	if _, err := s.reserve(ctx, bucket{key: "passkey-registration-user:" + id.UserID, limit: s.cfg.Limits.LoginAttemptsPerIP}); err != nil {
		return nil, err
	}
	pu, _, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("passkey registration options: %w", err)
	}
	creation, sd, err := s.webauthn.BeginRegistration(pu, webauthn.WithExclusions(webauthn.Credentials(pu.creds).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("passkey registration options: %w", err)
	}
	if err := s.saveChallenge(ctx, db.CeremonyRegistration, sd, &id.UserID, &id.SessionID); err != nil {
		return nil, fmt.Errorf("passkey registration options: %w", err)
	}
	return json.Marshal(creation.Response)
}

// ErrPasskeyInvalid refuses a registration response (the field response).
// Which check refused it is logged, not told.
var ErrPasskeyInvalid = invalidInput(ReasonInvalidInput, "response", "The passkey could not be registered: begin again with passkeyRegistrationOptions.")

// ErrPasskeyTaken refuses a credential already registered, to anyone.
var ErrPasskeyTaken = invalidInput(ReasonInvalidInput, "response", "This passkey is registered already.")

// RegisterPasskey finishes the registration that PasskeyRegistrationOptions
// began, in the same session, and stores the credential as a verified
// factor. The first verified factor of a user signs out every other
// session of theirs, as the first TOTP code does; the registering session
// stays signed in.
func (s *Service) RegisterPasskey(ctx context.Context, response []byte, friendlyName *string) (*Factor, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	f, err := s.registerPasskey(ctx, id, response, friendlyName)
	if err != nil {
		s.logRefusal(ctx, "registerPasskey", err, id.UserID)
		var r *refusal
		if errors.As(err, &r) {
			return nil, ErrPasskeyInvalid
		}
		return nil, err
	}
	return f, nil
}

func (s *Service) registerPasskey(ctx context.Context, id Identity, response []byte, friendlyName *string) (*Factor, error) {
	name, err := cleanFriendlyName(friendlyName)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, refused("response_malformed", err)
	}
	c, sd, err := s.takeChallenge(ctx, db.CeremonyRegistration, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return nil, err
	}
	if c.UserID == nil || *c.UserID != id.UserID || c.SessionID == nil || *c.SessionID != id.SessionID {
		return nil, refused("challenge_of_another_session", nil)
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrTokenRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("register passkey: %w", err)
	}
	if u.MFAEnabled && id.AAL != AAL2 {
		return nil, ErrMFARequired
	}
	pu, _, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("register passkey: %w", err)
	}
	cred, err := s.webauthn.CreateCredential(pu, sd, parsed)
	if err != nil {
		return nil, refused("registration_invalid", err)
	}
	now := s.revocations.pastCutoff(id.UserID, s.clock())
	f := db.Factor{ID: newID(), UserID: id.UserID, Type: string(FactorWebAuthn), FriendlyName: name, CreatedAt: now, VerifiedAt: &now}
	aaguid, err := uuid.FromBytes(cred.Authenticator.AAGUID)
	if err != nil {
		aaguid = uuid.Nil
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	p := db.Passkey{FactorID: f.ID, UserID: id.UserID, CredentialID: b64.EncodeToString(cred.ID), PublicKey: b64.EncodeToString(cred.PublicKey),
		AttestationType: cred.AttestationType, AttestationFormat: cred.AttestationFormat, AAGUID: aaguid.String(),
		SignCount: int64(cred.Authenticator.SignCount), Transports: strings.Join(transports, ","),
		UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState}
	first, err := s.store.CreatePasskey(ctx, f, p, MaxFactors, id.SessionID)
	switch {
	case errors.Is(err, db.ErrConflict):
		s.logger.Info(passkeyLog, "op", "registerPasskey", "check", "credential_registered_already", "user_id", id.UserID,
			"request_id", ClientFromContext(ctx).RequestID)
		return nil, ErrPasskeyTaken
	case errors.Is(err, db.ErrLimitReached):
		return nil, ErrTooManyFactors
	case err != nil:
		return nil, fmt.Errorf("register passkey: %w", err)
	}
	if first {
		s.revocations.CutOff(id.UserID, now, id.SessionID)
		s.logger.Info("second factor verified: other sessions revoked", "user_id", id.UserID, "factor_id", f.ID,
			"request_id", ClientFromContext(ctx).RequestID)
	}
	out := toFactor(f)
	return &out, nil
}

// cleanFriendlyName trims a factor's name; blank is none.
func cleanFriendlyName(friendlyName *string) (*string, error) {
	if friendlyName == nil {
		return nil, nil
	}
	n := strings.TrimSpace(*friendlyName)
	if len([]rune(n)) > maxFriendlyName {
		return nil, invalidInput(ReasonInvalidInput, "friendlyName", fmt.Sprintf("friendlyName has at most %d characters.", maxFriendlyName))
	}
	if n == "" {
		return nil, nil
	}
	return &n, nil
}

// passkeyOptionsBucket counts the login options an address asks for: each
// one writes a challenge, so that one address cannot fill the table. It has
// the limit of login attempts, in a bucket of its own so that asking for
// options does not use up the logins themselves.
func (s *Service) passkeyOptionsBucket(ctx context.Context) bucket {
	return bucket{key: "passkey-options-ip:" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.LoginAttemptsPerIP}
}

// PasskeyLoginOptions begins a passkey sign-in:
// PublicKeyCredentialRequestOptionsJSON. With a username, the options list
// that user's credentials; without, none, and the authenticator offers the
// passkeys it holds for this relying party (a discoverable login).
//
// A username that names nobody, or a user without a passkey, gets options
// of the same shape, listing one credential id derived from the name under
// a server key: the answer is the same for the same name every time, so the
// options do not tell who has an account (or a passkey), and no response
// to them can succeed.
func (s *Service) PasskeyLoginOptions(ctx context.Context, username *string) (json.RawMessage, error) {
	if _, err := s.reserve(ctx, s.passkeyOptionsBucket(ctx)); err != nil {
		return nil, err
	}
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
		userID    *string
		err       error
	)
	uv := webauthn.WithUserVerification(protocol.VerificationRequired)
	if username == nil {
		assertion, sd, err = s.webauthn.BeginDiscoverableLogin(uv)
	} else {
		var pu *passkeyUser
		u, lookupErr := s.store.UserByUsername(ctx, normalizeLookup(*username))
		if lookupErr != nil && !errors.Is(lookupErr, db.ErrNotFound) {
			return nil, fmt.Errorf("passkey login options: %w", lookupErr)
		}
		if lookupErr == nil {
			if pu, _, err = s.loadPasskeyUser(ctx, u); err != nil {
				return nil, fmt.Errorf("passkey login options: %w", err)
			}
		}
		if pu != nil && len(pu.creds) > 0 {
			userID = &u.ID
			assertion, sd, err = s.webauthn.BeginLogin(pu, uv)
		} else {
			decoy := protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: s.decoyCredentialID(*username),
				Transport: []protocol.AuthenticatorTransport{protocol.Internal, protocol.Hybrid}}
			assertion, sd, err = s.webauthn.BeginDiscoverableLogin(uv, webauthn.WithAllowedCredentials([]protocol.CredentialDescriptor{decoy}))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("passkey login options: %w", err)
	}
	if err := s.saveChallenge(ctx, db.CeremonyLogin, sd, userID, nil); err != nil {
		return nil, fmt.Errorf("passkey login options: %w", err)
	}
	return json.Marshal(assertion.Response)
}

// decoyCredentialID is the credential id the options for username list
// when it has no passkey: 32 bytes (the size of real ones) of an HMAC of
// the lowercased name under a key derived from the signing key for this
// alone. It is not secret from the name's owner, only unpredictable to
// everyone else, and it names no credential anyone holds.
func (s *Service) decoyCredentialID(username string) []byte {
	m := hmac.New(sha256.New, s.decoyKey)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(username))))
	return m.Sum(nil)
}

// verifiedAssertion is a passkey assertion that every check accepted.
type verifiedAssertion struct {
	user db.User
	use  db.PasskeyUse
}

// checkAssertion parses and verifies an AuthenticationResponseJSON against
// the challenge it answers (taken, once) and the credential it names. With
// callerID set, the credential must be the caller's. Every refusal is a
// *refusal naming its check; once the credential names its owner, the
// returned assertion carries the owner even with an error, so that the
// failure is counted for them too.
func (s *Service) checkAssertion(ctx context.Context, response []byte, callerID string) (va *verifiedAssertion, err error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, refused("response_malformed", err)
	}
	c, sd, err := s.takeChallenge(ctx, db.CeremonyLogin, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return nil, err
	}
	pk, err := s.store.PasskeyByCredentialID(ctx, b64.EncodeToString(parsed.RawID))
	if errors.Is(err, db.ErrNotFound) {
		return nil, refused("credential_unknown", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("check passkey: %w", err)
	}
	if (callerID != "" && pk.UserID != callerID) || (c.UserID != nil && *c.UserID != pk.UserID) {
		// Counted for the user the options or the session were for, not for
		// the key's owner: that is the account being tried.
		target := callerID
		if target == "" {
			target = *c.UserID
		}
		if u, err := s.store.UserByID(ctx, target); err == nil {
			va = &verifiedAssertion{user: u}
		}
		return va, refused("credential_of_another_user", nil)
	}
	u, err := s.store.UserByID(ctx, pk.UserID)
	if err != nil {
		return nil, fmt.Errorf("check passkey: %w", err)
	}
	va = &verifiedAssertion{user: u}
	pu, _, err := s.loadPasskeyUser(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("check passkey: %w", err)
	}
	var cred *webauthn.Credential
	if len(sd.UserID) == 0 {
		// Discoverable: the user handle the authenticator returns must be
		// the credential's owner's.
		_, cred, err = s.webauthn.ValidatePasskeyLogin(func(_, userHandle []byte) (webauthn.User, error) {
			if string(userHandle) != u.ID {
				return nil, errors.New("the user handle is not the credential owner's")
			}
			return pu, nil
		}, sd, parsed)
	} else {
		cred, err = s.webauthn.ValidateLogin(pu, sd, parsed)
	}
	if err != nil {
		return va, refused("assertion_invalid", err)
	}
	if cred.Authenticator.CloneWarning {
		// The counter did not go up on a key that counts: two copies of the
		// private key may exist. Refused, and logged as a warning.
		return va, refused("sign_count_not_advanced", fmt.Errorf("stored %d, presented %d", pk.SignCount, parsed.Response.AuthenticatorData.Counter))
	}
	va.use = db.PasskeyUse{FactorID: pk.FactorID, SignCount: int64(cred.Authenticator.SignCount), BackupState: cred.Flags.BackupState, Now: s.clock()}
	return va, nil
}

// loginWithPasskey signs in with a passkey (LoginWithPasskey counts it as a
// login): an AAL2 session (the key
// proves possession, its user verification a second factor) with
// amr ["hwk","user"] and a fresh token. Every failure is the same
// INVALID_CREDENTIALS, counted toward the login throttles of the address
// (and of the user, once the credential names one); the log says which
// check failed.
func (s *Service) loginWithPasskey(ctx context.Context, response []byte) (*Tokens, error) {
	attempts := bucket{key: "login-attempts-ip:" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.LoginAttemptsPerIP}
	_, ip := s.loginBuckets(ctx, "")
	at, err := s.reserve(ctx, attempts, ip)
	if err != nil {
		return nil, err
	}
	va, err := s.checkAssertion(ctx, response, "")
	if err == nil {
		if err = s.store.UsePasskey(ctx, va.use); errors.Is(err, db.ErrCounterNotAdvanced) {
			err = refused("sign_count_not_advanced", err)
		}
	}
	if err != nil {
		s.settle(context.WithoutCancel(ctx), at, ip)
		var r *refusal
		if errors.As(err, &r) {
			uid := ""
			if va != nil {
				uid = va.user.ID
				s.countUserFailure(ctx, va.user.Username)
			}
			s.logRefusal(ctx, "loginWithPasskey", err, uid)
			return nil, ErrInvalidCredentials
		}
		return nil, fmt.Errorf("login with passkey: %w", err)
	}
	s.release(ctx, at, ip)
	sess, rt, refresh := s.newSession(ctx, va.user.ID)
	methods := MethodHardwareKey | MethodUserPresence
	sess.AAL, sess.AMR = AAL2.claim(), methods.String()
	revoked, err := s.store.CreateSession(ctx, sess, rt, s.cfg.SessionsPerUser)
	if err != nil {
		return nil, fmt.Errorf("login with passkey: %w", err)
	}
	s.addRevoked(revoked, sess.CreatedAt)
	return s.issue(toUser(va.user), sess.ID, refresh, rt.ExpiresAt, true, AAL2, methods)
}

// countUserFailure counts a failed passkey sign-in in the per-(username,
// address) bucket of password logins too, as a wrong password would be.
func (s *Service) countUserFailure(ctx context.Context, username string) {
	ctx = context.WithoutCancel(ctx)
	userIP, _ := s.loginBuckets(ctx, username)
	if at, err := s.reserve(ctx, userIP); err == nil {
		s.settle(ctx, at, userIP)
	}
}

// VerifyPasskey steps the caller's session up to AAL2 with one of the
// caller's passkeys, as VerifyTOTP does with a code: a new, fresh pair for
// the same session, amr gaining "hwk". The options come from
// PasskeyLoginOptions (with the caller's username, or none). A failure is
// INVALID_CREDENTIALS, counted per user like a wrong code and per address
// like a failed login.
func (s *Service) VerifyPasskey(ctx context.Context, response []byte) (*Tokens, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	_, ip := s.loginBuckets(ctx, "")
	b := s.mfaBucket(id.UserID)
	at, err := s.reserve(ctx, b, ip)
	if err != nil {
		return nil, err
	}
	// Until it succeeds the attempt is a failure of the address, whatever
	// ends it (a refusal, the session revoked meanwhile, the database).
	succeeded := false
	defer func() {
		if !succeeded {
			s.settle(context.WithoutCancel(ctx), at, ip)
		}
	}()
	va, err := s.checkAssertion(ctx, response, id.UserID)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			s.logRefusal(ctx, "verifyPasskey", err, id.UserID)
			return nil, ErrInvalidCredentials
		}
		return nil, fmt.Errorf("verify passkey: %w", err)
	}
	now := va.use.Now
	rt, refresh := s.newRefreshToken(now, id.SessionID)
	methods := stepUpBase(id.Methods) | MethodHardwareKey
	r, err := s.store.AcceptPasskey(ctx, id.UserID, va.use, db.StepUp{SessionID: id.SessionID, AAL: AAL2.claim(), AMR: methods.String(), Next: rt, Now: now})
	if errors.Is(err, db.ErrCounterNotAdvanced) {
		s.logRefusal(ctx, "verifyPasskey", refused("sign_count_not_advanced", err), id.UserID)
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, s.stepUpError("verify passkey", err)
	}
	succeeded = true
	s.release(ctx, at, ip)
	if err := s.store.ResetHits(ctx, b.key); err != nil {
		s.logger.Warn("could not reset the code throttle", "error", err.Error())
	}
	return s.issue(toUser(r.User), r.Session.ID, refresh, r.Session.ExpiresAt, true, AAL2, methods)
}
