// The account pages' script: read ?token= from the link, take it out of the
// address bar (and so out of the history and of any screenshot), and finish
// the flow through /graphql. A file rather than an inline script, so that
// the Content-Security-Policy allows scripts from 'self' alone.
(function () {
  'use strict';

  var form = document.getElementById('flow');
  var flow = form.getAttribute('data-flow');
  var tokenInput = document.getElementById('token');
  var button = document.getElementById('submit');
  var status = document.getElementById('status');

  var params = new URLSearchParams(location.search);
  if (params.has('token')) {
    tokenInput.value = params.get('token');
    history.replaceState(null, '', location.pathname);
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = kind || '';
  }

  // One GraphQL operation over POST, as any client sends it.
  function graphql(query, variables, accessToken) {
    var headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' };
    if (accessToken) headers.Authorization = 'Bearer ' + accessToken;
    return fetch('/graphql', {
      method: 'POST', headers: headers, credentials: 'omit',
      body: JSON.stringify({ query: query, variables: variables })
    }).then(function (res) { return res.json(); });
  }

  function failure(body) {
    var e = body && body.errors && body.errors[0];
    if (!e) return 'Something went wrong: try again.';
    var reason = e.extensions && e.extensions.reason;
    if (reason === 'INVALID_TOKEN') return 'This link or code is unknown, used or expired: ask for a new mail.';
    return e.message;
  }

  function verify(token) {
    return graphql('mutation Verify($token: String!) { verifyEmail(token: $token) }', { token: token })
      .then(function (body) {
        if (body.data && body.data.verifyEmail) return say('Your email address is confirmed. You can close this page.', 'ok');
        say(failure(body), 'error');
        button.disabled = false;
      });
  }

  function reset(token) {
    var password = document.getElementById('password').value;
    if (password !== document.getElementById('repeat').value) {
      button.disabled = false;
      return Promise.resolve(say('The two passwords differ.', 'error'));
    }
    return graphql('mutation Reset($token: String!, $p: String!) { resetPassword(token: $token, newPassword: $p) { accessToken } }',
      { token: token, p: password })
      .then(function (body) {
        var payload = body.data && body.data.resetPassword;
        if (!payload) {
          say(failure(body), 'error');
          button.disabled = false;
          return;
        }
        // resetPassword signs in as login does; this page is no application
        // and keeps no session, so it signs that one out again at once.
        form.reset();
        say('Your password is set and every device is signed out. Sign in with the new password.', 'ok');
        return graphql('mutation { logout }', {}, payload.accessToken);
      });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var token = tokenInput.value.trim();
    if (!token) return say('Paste the code from the mail.', 'error');
    button.disabled = true;
    say('One moment…');
    (flow === 'reset' ? reset(token) : verify(token)).catch(function () {
      say('The server could not be reached: try again.', 'error');
      button.disabled = false;
    });
  });
}());
