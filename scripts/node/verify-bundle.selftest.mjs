// Self-test for verify-bundle.mjs: proves it is not a rubber stamp. Builds Sigstore v0.3 bundles in
// exactly the pipeline's shape (cosign v3 key-based, DSSE over an in-toto Statement v1, no
// transparency log) with keys generated here by node:crypto, and runs verify-bundle.mjs as a
// child process: genuine bundles must verify, every tampered or mismatched one must be refused by
// the check it names.
//
//   .work/node/node_modules/.bin/node scripts/node/verify-bundle.selftest.mjs
//
// Exits non-zero when any case has an unexpected result.
import { spawnSync } from 'node:child_process';
import { constants, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'verify-bundle.mjs');
const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const PREDICATE_TYPE = 'https://example.com/ecr-promotion/approval/v1';
const DIGEST_HEX = createHash('sha256').update('the promoted image manifest').digest('hex');
const OTHER_HEX = createHash('sha256').update('some other image manifest').digest('hex');

const dir = mkdtempSync(join(tmpdir(), 'verify-bundle-selftest-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function keyPair(kind) {
  const { publicKey, privateKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 3072 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const pemPath = join(dir, `${kind}-${createHash('sha256').update(spki).digest('hex').slice(0, 12)}.pem`);
  writeFileSync(pemPath, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey, pemPath, hint: createHash('sha256').update(spki).digest('base64') };
}

function statement(digestHex, predicateType = PREDICATE_TYPE) {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [
      {
        name: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/trusted/app',
        digest: { sha256: digestHex },
        annotations: { 'org.opencontainers.image.vendor': 'Example Corp' },
      },
    ],
    predicateType,
    predicate: { approvedBy: 'selftest', environment: 'prod' },
  };
}

// "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in bytes.
function pae(type, body) {
  const t = Buffer.from(type, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${t.length} `), t, Buffer.from(` ${body.length} `), body]);
}

// Signs `stmt` with `signer`'s private key (ECDSA: DER signature; RSA: PKCS#1 v1.5 unless `rsaPss`).
function makeBundle(signer, stmt, { hint = signer.hint, rsaPss = false, minimal = false } = {}) {
  const body = Buffer.from(JSON.stringify(stmt), 'utf8');
  const key = rsaPss ? { key: signer.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : signer.privateKey;
  const sig = sign('sha256', pae(PAYLOAD_TYPE, body), key);
  const bundle = {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
    dsseEnvelope: {
      payload: body.toString('base64'),
      payloadType: PAYLOAD_TYPE,
      signatures: [{ sig: sig.toString('base64'), keyid: '' }],
    },
  };
  if (minimal) {
    // tlogEntries and keyid absent: also what the pipeline may write.
    delete bundle.verificationMaterial.tlogEntries;
    delete bundle.dsseEnvelope.signatures[0].keyid;
  }
  return bundle;
}

let n = 0;
function write(bundle) {
  n += 1;
  const p = join(dir, `bundle-${n}.json`);
  writeFileSync(p, typeof bundle === 'string' ? bundle : JSON.stringify(bundle));
  return p;
}

function run(args) {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

const results = [];
// expect: {code, stderr?: RegExp (the check the refusal must name), stdout?: (text) => bool}
function check(name, args, expect) {
  const r = run(args);
  const problems = [];
  if (r.code !== expect.code) problems.push(`exit ${r.code}, expected ${expect.code}`);
  if (expect.stderr && !expect.stderr.test(r.stderr)) problems.push(`stderr does not match ${expect.stderr}`);
  if (expect.stdout && !expect.stdout(r.stdout)) problems.push('unexpected stdout');
  if (expect.code !== 0 && r.stdout !== '') problems.push('refusal printed something on stdout');
  if (expect.code !== 0 && r.stderr.split('\n').length !== (expect.code === 2 ? 2 : 1)) problems.push('stderr is not one line');
  const ok = problems.length === 0;
  results.push({ name, ok });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: exit ${r.code}${r.stderr ? ` | ${r.stderr.split('\n')[0]}` : ''}`);
  if (!ok) console.log(`     ${problems.join('; ')}\n     stdout: ${r.stdout}\n     stderr: ${r.stderr}`);
  return r;
}

const verifiedOutput = (text) => {
  try {
    const o = JSON.parse(text);
    return (
      o.verified === true &&
      o.predicateType === PREDICATE_TYPE &&
      o.subjects.length === 1 &&
      o.subjects[0].digest.sha256 === DIGEST_HEX &&
      !text.includes('\n')
    );
  } catch {
    return false;
  }
};
const args = (bundlePath, pemPath, digestHex = DIGEST_HEX, predicateType) => [
  '--bundle', bundlePath, '--key', pemPath, '--digest', `sha256:${digestHex}`,
  ...(predicateType === undefined ? [] : ['--predicate-type', predicateType]),
];

for (const kind of ['ec', 'rsa']) {
  const label = kind === 'ec' ? 'P-256' : 'RSA-3072 PKCS#1 v1.5';
  const a = keyPair(kind);
  const b = keyPair(kind);
  const genuine = makeBundle(a, statement(DIGEST_HEX));
  const genuinePath = write(genuine);

  check(`${label}: genuine bundle verifies`, args(genuinePath, a.pemPath), { code: 0, stdout: verifiedOutput });
  check(`${label}: genuine bundle with matching --predicate-type verifies`, args(genuinePath, a.pemPath, DIGEST_HEX, PREDICATE_TYPE), {
    code: 0,
    stdout: verifiedOutput,
  });
  check(`${label}: genuine bundle without tlogEntries/keyid verifies`, args(write(makeBundle(a, statement(DIGEST_HEX), { minimal: true })), a.pemPath), {
    code: 0,
    stdout: verifiedOutput,
  });

  // Statement changed after signing (now names another image), signature kept.
  const tampered = structuredClone(genuine);
  tampered.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement(OTHER_HEX))).toString('base64');
  check(`${label}: tampered payload is refused`, args(write(tampered), a.pemPath, OTHER_HEX), { code: 1, stderr: /signature\/key check failed: SIGNATURE_ERROR/ });

  // payloadType is part of the PAE: changing it must break the signature too.
  const retyped = structuredClone(genuine);
  retyped.dsseEnvelope.payloadType = 'application/json';
  check(`${label}: tampered payloadType is refused`, args(write(retyped), a.pemPath), { code: 1, stderr: /signature\/key check failed: SIGNATURE_ERROR/ });

  check(`${label}: genuine bundle against another key is refused`, args(genuinePath, b.pemPath), { code: 1, stderr: /signature\/key check failed: PUBLIC_KEY_ERROR/ });

  // The hint names the other key (as if re-labelled), the signature is still by the first one.
  check(`${label}: hint re-pointed to another key is refused`, args(write(makeBundle(a, statement(DIGEST_HEX), { hint: b.hint })), b.pemPath), {
    code: 1,
    stderr: /signature\/key check failed: SIGNATURE_ERROR/,
  });

  check(`${label}: wrong --digest is refused`, args(genuinePath, a.pemPath, OTHER_HEX), { code: 1, stderr: /digest check failed/ });
  check(`${label}: wrong --predicate-type is refused`, args(genuinePath, a.pemPath, DIGEST_HEX, 'https://example.com/other/v1'), {
    code: 1,
    stderr: /predicate type check failed/,
  });

  // Properly signed, but not an in-toto Statement v1.
  const v01 = { ...statement(DIGEST_HEX), _type: 'https://in-toto.io/Statement/v0.1' };
  check(`${label}: signed non-v1 statement is refused`, args(write(makeBundle(a, v01)), a.pemPath), { code: 1, stderr: /statement check failed/ });

  if (kind === 'rsa') {
    // RSA-PSS is not supported: @sigstore/verify 4 verifies every RSA public-key signature with
    // PKCS#1 v1.5 padding (Node's default for an rsaEncryption key), so a PSS signature is refused.
    check(`${label}: RSA-PSS signature is refused (not supported by @sigstore/verify)`, args(write(makeBundle(a, statement(DIGEST_HEX), { rsaPss: true })), a.pemPath), {
      code: 1,
      stderr: /signature\/key check failed: SIGNATURE_ERROR/,
    });
  }
}

// Malformed bundles and usage errors (key-independent).
const k = keyPair('ec');
const good = makeBundle(k, statement(DIGEST_HEX));
check('malformed: not JSON', args(write('{"mediaType":'), k.pemPath), { code: 1, stderr: /malformed bundle check failed/ });
check('malformed: no signatures', args(write({ ...good, dsseEnvelope: { ...good.dsseEnvelope, signatures: [] } }), k.pemPath), {
  code: 1,
  stderr: /malformed bundle check failed.*signatures/,
});
check('malformed: no verificationMaterial', args(write({ mediaType: good.mediaType, dsseEnvelope: good.dsseEnvelope }), k.pemPath), {
  code: 1,
  stderr: /malformed bundle check failed/,
});
check('malformed: v0.2 mediaType', args(write({ ...good, mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.2' }), k.pemPath), {
  code: 1,
  stderr: /malformed bundle check failed: mediaType/,
});
const goodPath = write(good);
check('usage: --digest missing', ['--bundle', goodPath, '--key', k.pemPath], { code: 2, stderr: /--digest is required/ });
check('usage: --digest not sha256:<hex>', ['--bundle', goodPath, '--key', k.pemPath, '--digest', DIGEST_HEX], { code: 2, stderr: /--digest must be/ });
check('usage: unknown flag', [...args(goodPath, k.pemPath), '--insecure'], { code: 2, stderr: /unknown argument/ });
check('usage: --key not a public key', args(goodPath, goodPath), { code: 2, stderr: /not a PEM public key/ });

const failed = results.filter((r) => !r.ok);
console.log(`verify-bundle selftest: ${results.length - failed.length}/${results.length} cases as expected${failed.length ? `; UNEXPECTED: ${failed.map((r) => r.name).join('; ')}` : ''}`);
process.exit(failed.length ? 1 : 0);
