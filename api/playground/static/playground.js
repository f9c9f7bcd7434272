// Tollgate's GraphiQL page: GraphiQL pointed at /graphql, subscriptions over
// WebSocket on the same path, and a headers editor preset for a bearer token.
// It is a file rather than an inline script so that the page's
// Content-Security-Policy can allow scripts from 'self' alone.
(function () {
  'use strict';

  // What the headers editor shows in every tab: paste the access token after "Bearer ".
  var presetHeaders = JSON.stringify({ Authorization: 'Bearer ' }, null, 2);

  // GraphiQL's own fetcher: HTTP POST to /graphql, and subscriptions through
  // the graphql-ws client bundled in graphiql.min.js (protocol
  // graphql-transport-ws), which sends the headers editor's object as the
  // connection_init payload: {"Authorization": "Bearer <token>"}, as the
  // server expects.
  var wsURL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql';
  var send = GraphiQL.createFetcher({ url: '/graphql', subscriptionUrl: wsURL });

  // The preset without a token ("Bearer ") is left out rather than sent, so
  // that a protected field answers TOKEN_MISSING, not TOKEN_INVALID, until a
  // token is pasted.
  function fetcher(params, opts) {
    var headers = opts && opts.headers;
    if (headers) {
      var kept = {};
      Object.keys(headers).forEach(function (name) {
        var emptyBearer = name.toLowerCase() === 'authorization' && /^\s*bearer\s*$/i.test(String(headers[name]));
        if (!emptyBearer) kept[name] = headers[name];
      });
      opts = Object.assign({}, opts, { headers: kept });
    }
    return send(params, opts);
  }

  // GraphiQL's storage: documents, tabs and history live in sessionStorage,
  // gone when the browser tab closes, and no header is ever stored, so no
  // token lingers. shouldPersistHeaders: false is not enough on its own:
  // GraphiQL 3 still writes each run's headers into its history
  // ("graphiql:queries"), so every "headers" member of what it stores is
  // blanked here, and "graphiql:headers" (the editor's last value) is never
  // written and always reads as the preset, which a reloaded tab shows.
  function withoutHeaders(value) {
    if (typeof value !== 'string' || value.charAt(0) !== '{') return value;
    try {
      return JSON.stringify(JSON.parse(value), function (key, member) {
        return key === 'headers' ? null : member;
      });
    } catch (e) {
      return value; // a document that starts with "{", not JSON
    }
  }
  var storage = {
    getItem: function (key) {
      return key === 'graphiql:headers' ? presetHeaders : sessionStorage.getItem(key);
    },
    setItem: function (key, value) {
      if (key !== 'graphiql:headers') sessionStorage.setItem(key, withoutHeaders(value));
    },
    removeItem: function (key) { sessionStorage.removeItem(key); },
    clear: function () { sessionStorage.clear(); },
    get length() { return sessionStorage.length; },
  };

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      storage: storage,
      defaultQuery: [
        '# Log in (or register), then paste the accessToken',
        '# under Headers, after "Bearer ", and run { protected }.',
        'mutation {',
        '  login(username: "alice", password: "correct horse") {',
        '    accessToken',
        '  }',
        '}',
        '',
      ].join('\n'),
      defaultHeaders: presetHeaders,
      shouldPersistHeaders: false,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: 'headers',
    }),
  );
})();
