// Independent verifier for the Sigstore bundles (v0.3, cosign v3 key-based shape, no transparency
// log) the pipeline writes: the signature is checked by sigstore-js (@sigstore/bundle +
// @sigstore/verify), not by the code under test, and then the in-toto statement is tied to the
// artifact, which the library leaves to the caller for DSSE envelopes.
//
//   node scripts/node/verify-bundle.mjs --bundle FILE --key PUBKEY.pem --digest sha256:<hex> \
//     [--predicate-type URI]
//
// Run it with .work/node/node_modules/.bin/node (Node 22, scripts/install-node.sh); the packages
// are resolved from .work/node/node_modules (or $LOCAL_NODE_DIR/node_modules).
//
// Trust material: ONLY the given public key, keyed by its hint base64(sha256(SPKI DER)) (the
// bundle's verificationMaterial.publicKey.hint must name it); no CAs, no transparency logs, no
// timestamp authorities, and the tlog / CT log / timestamp thresholds are 0.
//
// Exit 0 and one JSON line {"verified":true,"predicateType":...,"subjects":[...]} on stdout when
// every check passes; exit 1 and one line on stderr naming the failed check (malformed bundle,
// signature/key, statement, digest, predicate type); exit 2 on usage errors.
//
// Signature algorithms: whatever sigstore-js verifies with Node's default digest for the key type,
// i.e. ECDSA P-256 / SHA-256 (DER) and RSA PKCS#1 v1.5 / SHA-256. RSA-PSS is not supported by
// @sigstore/verify 4 for public-key bundles (it always verifies RSA with PKCS#1 v1.5 padding).
import { createHash, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The sigstore packages live in .work/node (scripts/install-node.sh), not next to this file.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(process.env.LOCAL_NODE_DIR ?? join(root, '.work', 'node'), 'package.json'));
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
const USAGE =
  'usage: node verify-bundle.mjs --bundle FILE --key PUBKEY.pem --digest sha256:<hex> [--predicate-type URI]';

function usage(message) {
  process.stderr.write(`verify-bundle: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function fail(check, message) {
  process.stderr.write(`verify-bundle: ${check} check failed: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const known = new Set(['--bundle', '--key', '--digest', '--predicate-type']);
  const args = {};
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === '-h' || flag === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!known.has(flag)) usage(`unknown argument ${JSON.stringify(flag)}`);
    if (flag in args) usage(`${flag} given twice`);
    if (i + 1 >= argv.length) usage(`${flag} needs a value`);
    args[flag] = argv[(i += 1)];
  }
  for (const flag of ['--bundle', '--key', '--digest']) {
    if (!(flag in args)) usage(`${flag} is required`);
  }
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(args['--digest']);
  if (!m) usage(`--digest must be sha256:<64 hex digits>, got ${JSON.stringify(args['--digest'])}`);
  if (args['--predicate-type'] === '') usage('--predicate-type must not be empty');
  return {
    bundlePath: args['--bundle'],
    keyPath: args['--key'],
    digestHex: m[1].toLowerCase(),
    predicateType: args['--predicate-type'],
  };
}

function readOrUsage(path, what) {
  try {
    return readFileSync(path);
  } catch (e) {
    return usage(`cannot read ${what} ${path}: ${e.message}`);
  }
}

const opts = parseArgs(process.argv.slice(2));

// The trusted key: SPKI DER and its hint, base64(sha256(SPKI DER)), as cosign writes it.
let spki;
try {
  spki = createPublicKey(readOrUsage(opts.keyPath, '--key')).export({ type: 'spki', format: 'der' });
} catch (e) {
  usage(`--key ${opts.keyPath} is not a PEM public key: ${e.message}`);
}
const keyHint = createHash('sha256').update(spki).digest('base64');

// Parse and structurally validate the bundle (@sigstore/bundle).
let bundle;
try {
  const json = JSON.parse(readOrUsage(opts.bundlePath, '--bundle').toString('utf8'));
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('not a JSON object');
  bundle = bundleFromJSON(json);
} catch (e) {
  fail('malformed bundle', `${opts.bundlePath}: ${e.message}${e.fields ? ` (${e.fields.join(', ')})` : ''}`);
}
if (bundle.mediaType !== BUNDLE_V03) {
  fail('malformed bundle', `mediaType is ${JSON.stringify(bundle.mediaType)}, expected ${BUNDLE_V03}`);
}
if (bundle.content?.$case !== 'dsseEnvelope') {
  fail('malformed bundle', `content is ${bundle.content?.$case ?? 'missing'}, expected dsseEnvelope`);
}
if (bundle.verificationMaterial.content?.$case !== 'publicKey') {
  fail('malformed bundle', `verificationMaterial is ${bundle.verificationMaterial.content?.$case ?? 'missing'}, expected publicKey`);
}

// Verify the signature with @sigstore/verify, trusting only the given key.
const emptyTrustedRoot = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [],
  certificateAuthorities: [],
  ctlogs: [],
  timestampAuthorities: [],
};
// keyDetails is not consulted for public keys (@sigstore/verify parses rawBytes as SPKI DER).
const trustMaterial = toTrustMaterial(emptyTrustedRoot, { [keyHint]: { rawBytes: spki, keyDetails: undefined } });
const verifier = new Verifier(trustMaterial, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
try {
  verifier.verify(toSignedEntity(bundle));
} catch (e) {
  const hint = bundle.verificationMaterial.content.publicKey.hint;
  const detail =
    e.code === 'PUBLIC_KEY_ERROR' && hint !== keyHint
      ? ` (the bundle's key hint ${JSON.stringify(hint)} is not --key's ${JSON.stringify(keyHint)})`
      : '';
  fail('signature/key', `${e.code ?? e.name}: ${e.message}${detail}`);
}

// The signed statement (the payload bytes the library verified) must name the artifact.
const envelope = bundle.content.dsseEnvelope;
if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
  fail('statement', `payloadType is ${JSON.stringify(envelope.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}`);
}
let statement;
try {
  statement = JSON.parse(envelope.payload.toString('utf8'));
} catch (e) {
  fail('statement', `payload is not JSON: ${e.message}`);
}
if (statement?._type !== STATEMENT_V1) {
  fail('statement', `_type is ${JSON.stringify(statement?._type)}, expected ${STATEMENT_V1}`);
}
if (!Array.isArray(statement.subject) || statement.subject.length === 0) {
  fail('statement', 'no subject');
}
if (!statement.subject.some((s) => s?.digest?.sha256 === opts.digestHex)) {
  const got = statement.subject.map((s) => `${s?.name ?? '?'}@sha256:${s?.digest?.sha256 ?? '?'}`).join(', ');
  fail('digest', `no subject has digest sha256:${opts.digestHex} (subjects: ${got})`);
}
if (opts.predicateType !== undefined && statement.predicateType !== opts.predicateType) {
  fail('predicate type', `predicateType is ${JSON.stringify(statement.predicateType)}, expected ${JSON.stringify(opts.predicateType)}`);
}

process.stdout.write(
  `${JSON.stringify({ verified: true, predicateType: statement.predicateType, subjects: statement.subject })}\n`,
);
