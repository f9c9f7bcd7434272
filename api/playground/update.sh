#!/bin/sh
# Rebuilds dist/ from the versions pinned in package.json and package-lock.json:
# the browser builds of GraphiQL and React that the Playground serves, with
# their licenses. dist/ is committed, so that building Tollgate needs no npm.
#
# To move to new versions: edit package.json, run `npm install --ignore-scripts`
# here to refresh package-lock.json, then this script, then `go test ./api/...`.
set -eu
cd "$(dirname "$0")"

npm ci --ignore-scripts --no-audit --no-fund

rm -rf dist
mkdir -p dist/licenses
# UMD builds: each defines one global (React, ReactDOM, GraphiQL), no bundler needed.
# graphiql.min.js bundles graphql, @graphiql/react, @graphiql/toolkit and graphql-ws.
cp node_modules/react/umd/react.production.min.js dist/
cp node_modules/react-dom/umd/react-dom.production.min.js dist/
# The source map is not shipped, so its reference goes too (no 404 in devtools).
sed '/^\/\/# sourceMappingURL=/d' node_modules/graphiql/graphiql.min.js >dist/graphiql.min.js
node extract-data-urls.mjs node_modules/graphiql/graphiql.min.css dist/graphiql.min.css assets
for pkg in graphiql react react-dom; do
	cp "node_modules/$pkg/LICENSE" "dist/licenses/$pkg.txt"
done
node -e '
const lock = require("./package-lock.json").packages;
for (const p of ["graphiql", "react", "react-dom"]) console.log(p + "@" + lock["node_modules/" + p].version);
' >dist/VERSIONS.txt
cat dist/VERSIONS.txt
