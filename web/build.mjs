// Builds web/dist: the Tickwork page and the GraphiQL assets the API serves
// offline. Run it as `npm ci && node build.mjs`; it needs no network.
//
// The GraphiQL files keep their unpkg paths under dist/vendor/, so the API can
// rewrite "https://unpkg.com/" to "/vendor/" in Strawberry's GraphiQL page and
// the page's sha384 integrity attributes still hold.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const WEB = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.join(WEB, "src");
const DIST = path.join(WEB, "dist");
const MODULES = path.join(WEB, "node_modules");

// The files, and their integrity attributes, that strawberry-graphql 0.341.2
// loads in strawberry/static/graphiql.html. A Strawberry upgrade that changes
// them must change this table and the versions in package.json together.
const GRAPHIQL_ASSETS = [
  [
    "react@18.2.0/umd/react.production.min.js",
    "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
  ],
  [
    "react-dom@18.2.0/umd/react-dom.production.min.js",
    "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
  ],
  [
    "js-cookie@3.0.5/dist/js.cookie.min.js",
    "sha384-/vxhYfM1LENRhdpZ8dwEsQn/X4VhpbEZSiU4m/FwR+PVpzar4fkEOw8FP9Y+OfQN",
  ],
  [
    "graphiql@3.8.3/graphiql.min.css",
    "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
  ],
  [
    "graphiql@3.8.3/graphiql.min.js",
    "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
  ],
  [
    "@graphiql/plugin-explorer@1.0.2/dist/style.css",
    "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
  ],
  [
    "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js",
    "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
  ],
];

const PAGE_FILES = ["index.html", "style.css", "favicon.svg"];

class BuildError extends Error {}

/** Split "@scope/name@1.2.3/sub/path" into its package, version and file. */
function parseUnpkgPath(unpkgPath) {
  const match = /^((?:@[^/@]+\/)?[^/@]+)@([^/]+)\/(.+)$/.exec(unpkgPath);
  if (!match) {
    throw new BuildError(`cannot parse unpkg path ${unpkgPath}`);
  }
  const [, name, version, file] = match;
  return { name, version, file };
}

async function sha384(file) {
  const digest = createHash("sha384").update(await readFile(file)).digest();
  return `sha384-${digest.toString("base64")}`;
}

async function installedVersion(name) {
  const manifest = path.join(MODULES, name, "package.json");
  if (!existsSync(manifest)) {
    return null;
  }
  return JSON.parse(await readFile(manifest, "utf8")).version;
}

async function copyGraphiqlAsset(unpkgPath, integrity) {
  const { name, version, file } = parseUnpkgPath(unpkgPath);

  const installed = await installedVersion(name);
  if (installed === null) {
    throw new BuildError(
      `${name} is not installed in web/node_modules; run "npm ci" first`,
    );
  }
  if (installed !== version) {
    throw new BuildError(
      `${name} ${installed} is installed but GraphiQL needs ${version}; ` +
        `fix package.json and run "npm ci"`,
    );
  }

  const source = path.join(MODULES, name, file);
  if (!existsSync(source)) {
    throw new BuildError(`missing GraphiQL file ${source}`);
  }
  const actual = await sha384(source);
  if (actual !== integrity) {
    throw new BuildError(
      `integrity of ${source} is ${actual}, Strawberry's page expects ` +
        `${integrity}`,
    );
  }

  const target = path.join(DIST, "vendor", unpkgPath);
  await mkdir(path.dirname(target), { recursive: true });
  await copyFile(source, target);

  // The minified files name a source map; ship it when the package has one so
  // the browser's developer tools do not report a missing file.
  const map = `${source}.map`;
  if (existsSync(map)) {
    await copyFile(map, `${target}.map`);
  }
}

/** Find Strawberry's GraphiQL page through $PYTHON (or the python3 on PATH). */
function findStrawberryPage() {
  if (process.env.STRAWBERRY_GRAPHIQL_HTML) {
    return process.env.STRAWBERRY_GRAPHIQL_HTML;
  }
  // find_spec locates the package without importing it and its dependencies.
  const script =
    "import importlib.util, pathlib; " +
    "spec = importlib.util.find_spec('strawberry'); " +
    "print(pathlib.Path(spec.origin).parent / 'static' / 'graphiql.html')";
  try {
    const found = execFileSync(process.env.PYTHON || "python3", ["-c", script], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 10_000,
    }).trim();
    return existsSync(found) ? found : null;
  } catch {
    return null;
  }
}

/**
 * Check the table above against an installed Strawberry page, so a Strawberry
 * upgrade that loads other files fails the build instead of GraphiQL.
 */
async function checkAgainstStrawberryPage() {
  const page = findStrawberryPage();
  if (page === null) {
    console.log(
      "Strawberry's graphiql.html not found (no strawberry on python3, " +
        "STRAWBERRY_GRAPHIQL_HTML unset); integrity table not cross-checked",
    );
    return;
  }

  const html = await readFile(page, "utf8");
  const tags = html.match(/<(?:script|link)\b[^>]*>/g) ?? [];
  const loaded = new Map();
  for (const tag of tags) {
    const url = /(?:src|href)="https:\/\/unpkg\.com\/([^"]+)"/.exec(tag);
    const integrity = /integrity="([^"]+)"/.exec(tag);
    if (url) {
      loaded.set(url[1], integrity ? integrity[1] : null);
    }
  }

  const expected = new Map(GRAPHIQL_ASSETS);
  const same =
    loaded.size === expected.size &&
    [...loaded].every(([url, integrity]) => expected.get(url) === integrity);
  if (!same) {
    const listed = [...loaded].map(([url, sri]) => `  ${url} ${sri}`);
    throw new BuildError(
      `${page} loads other GraphiQL files than build.mjs copies:\n` +
        listed.join("\n"),
    );
  }
  console.log(`GraphiQL files match ${page}`);
}

async function build() {
  await rm(DIST, { recursive: true, force: true });
  await mkdir(DIST, { recursive: true });

  await esbuild.build({
    entryPoints: [path.join(SRC, "app.js")],
    outfile: path.join(DIST, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2020"],
    minify: true,
    sourcemap: "linked",
    legalComments: "linked",
    logLevel: "warning",
  });

  for (const file of PAGE_FILES) {
    await copyFile(path.join(SRC, file), path.join(DIST, file));
  }

  for (const [unpkgPath, integrity] of GRAPHIQL_ASSETS) {
    await copyGraphiqlAsset(unpkgPath, integrity);
  }
  await checkAgainstStrawberryPage();

  console.log(`built ${path.relative(process.cwd(), DIST) || "."}`);
}

try {
  await build();
} catch (error) {
  // esbuild prints its own diagnostics before it throws; our errors say
  // enough without a stack.
  const detail = error instanceof BuildError ? error.message : error.stack;
  console.error(`build failed: ${detail}`);

  // Half a dist/ would serve a page without its assets; serve nothing.
  await rm(DIST, { recursive: true, force: true });
  process.exitCode = 1;
}
