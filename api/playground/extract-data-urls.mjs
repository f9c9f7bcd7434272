// Moves every base64 data: URL out of a style sheet into a file of its own,
// named by its content hash, and points the style sheet at that file. GraphiQL
// inlines its fonts and a few images as data: URLs; served as files they let
// the page's Content-Security-Policy say font-src 'self' and img-src 'self'.
// Written by hand because it is one regular expression: a CSS toolchain
// (postcss and a plugin) would be more to pin than what it replaces.
//
// Usage: node extract-data-urls.mjs <in.css> <out.css> <assets dir, relative to out.css>
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const [input, output, assetsDir] = process.argv.slice(2);
if (!input || !output || !assetsDir) {
  console.error('usage: node extract-data-urls.mjs <in.css> <out.css> <assets dir>');
  process.exit(2);
}
const extensions = {
  'font/woff2': 'woff2',
  'font/woff': 'woff',
  'image/png': 'png',
  'image/svg+xml': 'svg',
};
mkdirSync(join(dirname(output), assetsDir), { recursive: true });
let count = 0;
const css = readFileSync(input, 'utf8').replace(
  /url\(\s*(["']?)data:([a-z0-9.+\/-]+);base64,([A-Za-z0-9+\/=]+)\1\s*\)/g,
  (match, quote, type, data) => {
    const ext = extensions[type];
    if (!ext) throw new Error(`no file extension known for ${type}`);
    const bytes = Buffer.from(data, 'base64');
    const name = `${assetsDir}/${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.${ext}`;
    writeFileSync(join(dirname(output), name), bytes);
    count++;
    return `url(${name})`;
  },
);
if (/url\(\s*["']?data:/.test(css)) throw new Error('a data: URL is left that this script does not understand');
writeFileSync(output, css.replace(/\n?\/\*# sourceMappingURL=[^*]*\*\/\s*$/, '\n'));
console.log(`${output}: ${count} data: URLs moved to ${assetsDir}/`);
