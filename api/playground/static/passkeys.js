// Tollgate's passkeys page: a working example of the passkey ceremonies for
// frontend teams, and the page the end-to-end suite drives. Each ceremony is
// three steps: ask /graphql for the options (the W3C JSON form), hand them
// to the browser (PublicKeyCredential.parse…OptionsFromJSON), and send the
// credential's toJSON() back. The access token lives in this closure only,
// never in storage; a real app would keep its session as the README shows.
(function () {
  'use strict';

  var state = { accessToken: null, user: null };

  function $(id) { return document.getElementById(id); }

  function show(text, isError) {
    $('status').textContent = text;
    $('status').className = isError ? 'error' : '';
  }

  // One GraphQL operation; throws the first error with its code and reason.
  async function gql(query, variables) {
    var headers = { 'Content-Type': 'application/json' };
    if (state.accessToken) headers.Authorization = 'Bearer ' + state.accessToken;
    var res = await fetch('/graphql', { method: 'POST', headers: headers, body: JSON.stringify({ query: query, variables: variables || {} }) });
    var body = await res.json();
    if (body.errors && body.errors.length) {
      var e = body.errors[0], x = e.extensions || {};
      throw new Error([x.code, x.reason].filter(Boolean).join(' / ') + ': ' + e.message);
    }
    return body.data;
  }

  // The claims of an access token, for display: the server checks the signature.
  function claims(token) {
    var p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4)));
  }

  var PAYLOAD = 'accessToken aal mfaRequired user { id username }';

  function signIn(payload, how) {
    state.accessToken = payload.accessToken;
    state.user = payload.user;
    var c = claims(payload.accessToken);
    $('signed-in').hidden = false;
    $('verify-passkey').hidden = !payload.mfaRequired;
    $('who').textContent = payload.user.username + ' · ' + payload.aal + ' · amr ' + c.amr.join(' ');
    show(payload.mfaRequired ? 'Password accepted: verify with a passkey.' : 'Signed in as ' + payload.user.username + ' (' + how + ', ' + payload.aal + ').');
  }

  // The browsers' JSON helpers (Chrome 129, Firefox 119, Safari 18), with a
  // small fallback that decodes the base64url members the ceremonies need.
  function b64ToBuf(s) {
    var b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    return Uint8Array.from(b, function (ch) { return ch.charCodeAt(0); }).buffer;
  }
  function bufToB64(buf) {
    var s = String.fromCharCode.apply(null, new Uint8Array(buf));
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    var o = Object.assign({}, json, { challenge: b64ToBuf(json.challenge), user: Object.assign({}, json.user, { id: b64ToBuf(json.user.id) }) });
    o.excludeCredentials = (json.excludeCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64ToBuf(c.id) }); });
    return o;
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    var o = Object.assign({}, json, { challenge: b64ToBuf(json.challenge) });
    o.allowCredentials = (json.allowCredentials || []).map(function (c) { return Object.assign({}, c, { id: b64ToBuf(c.id) }); });
    return o;
  }
  function credentialJSON(cred) {
    if (cred.toJSON) return cred.toJSON();
    var r = cred.response, out = { id: cred.id, rawId: bufToB64(cred.rawId), type: cred.type, clientExtensionResults: cred.getClientExtensionResults(), authenticatorAttachment: cred.authenticatorAttachment, response: { clientDataJSON: bufToB64(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = bufToB64(r.authenticatorData);
      out.response.signature = bufToB64(r.signature);
      if (r.userHandle) out.response.userHandle = bufToB64(r.userHandle);
    }
    return out;
  }

  // An assertion for the options of passkeyLoginOptions(username).
  async function assertion(username) {
    var d = await gql('mutation($u: String) { passkeyLoginOptions(username: $u) }', { u: username });
    var cred = await navigator.credentials.get({ publicKey: requestOptions(d.passkeyLoginOptions) });
    return credentialJSON(cred);
  }

  function run(fn) {
    return function (ev) {
      if (ev) ev.preventDefault();
      $('result').textContent = '';
      Promise.resolve().then(fn).catch(function (err) { show(err.message || String(err), true); });
    };
  }

  // Usernameless: the authenticator offers the passkeys it holds for this site.
  $('passkey-login').addEventListener('click', run(async function () {
    show('Waiting for the passkey…');
    var response = await assertion(null);
    var d = await gql('mutation($r: JSON!) { loginWithPasskey(response: $r) { ' + PAYLOAD + ' } }', { r: response });
    signIn(d.loginWithPasskey, 'passkey');
  }));

  $('password-form').addEventListener('submit', run(async function () {
    var d = await gql('mutation($u: String!, $p: String!) { login(username: $u, password: $p) { ' + PAYLOAD + ' } }', { u: $('username').value, p: $('password').value });
    $('password').value = '';
    signIn(d.login, 'password');
  }));

  // The second factor after a password: the options list this user's passkeys.
  $('verify-passkey').addEventListener('click', run(async function () {
    show('Waiting for the passkey…');
    var response = await assertion(state.user.username);
    var d = await gql('mutation($r: JSON!) { verifyPasskey(response: $r) { ' + PAYLOAD + ' } }', { r: response });
    signIn(d.verifyPasskey, 'password and passkey');
  }));

  $('register-passkey').addEventListener('click', run(async function () {
    show('Waiting for the authenticator…');
    var d = await gql('{ passkeyRegistrationOptions }');
    var cred = await navigator.credentials.create({ publicKey: creationOptions(d.passkeyRegistrationOptions) });
    var f = await gql('mutation($r: JSON!, $n: String) { registerPasskey(response: $r, friendlyName: $n) { id type friendlyName } }', { r: credentialJSON(cred), n: $('friendly-name').value });
    show('Passkey registered: ' + f.registerPasskey.friendlyName + '.');
    $('result').textContent = JSON.stringify(f.registerPasskey);
  }));

  $('call-protected').addEventListener('click', run(async function () {
    var d = await gql('{ protected }');
    $('result').textContent = d.protected;
  }));

  $('logout').addEventListener('click', run(async function () {
    await gql('mutation { logout }');
    state.accessToken = null;
    state.user = null;
    $('signed-in').hidden = true;
    $('verify-passkey').hidden = true;
    show('Signed out.');
  }));

  // Sign-in with an OpenID Connect provider: a plain link to the start
  // route; the provider sends the browser back here with the session in the
  // refresh cookie (or ?error=…), and one refreshToken without a token
  // turns it into an access token. This page comes back to its own URL,
  // which must be listed in OIDC_REDIRECT_URIS.
  var here = location.origin + location.pathname;
  function button(label, onclick) {
    var b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', run(onclick));
    return b;
  }
  gql('{ oidcProviders }').then(function (d) {
    d.oidcProviders.forEach(function (name) {
      var b = button('Sign in with ' + name, function () {
        sessionStorage.setItem('tollgate-oidc', '1');
        location.assign('/auth/oidc/' + encodeURIComponent(name) + '/start?redirect_uri=' + encodeURIComponent(here));
      });
      b.id = 'oidc-' + name;
      $('providers').appendChild(b);
      // Linking needs a fresh session: straight after signing in here.
      var l = button('Link a ' + name + ' account', async function () {
        var r = await gql('mutation($p: String!, $r: String!) { linkIdentityStart(provider: $p, redirectUri: $r) }', { p: name, r: here });
        sessionStorage.setItem('tollgate-oidc', 'link');
        location.assign(r.linkIdentityStart);
      });
      l.id = 'link-' + name;
      $('link-providers').appendChild(l);
    });
    $('providers-section').hidden = d.oidcProviders.length === 0;
  }).catch(function () {});
  var back = sessionStorage.getItem('tollgate-oidc');
  sessionStorage.removeItem('tollgate-oidc');
  var error = new URLSearchParams(location.search).get('error');
  if (error) {
    show('The provider sign-in was refused: ' + error + '.', true);
  } else if (back === 'link') {
    show('Account linked: sign in to use it.');
  } else if (back) {
    run(async function () {
      var d = await gql('mutation { refreshToken { ' + PAYLOAD + ' } }');
      signIn(d.refreshToken, 'provider');
    })();
  }

  if (!window.PublicKeyCredential) show('This browser has no WebAuthn (or the page is not on a secure origin).', true);
})();
