/**
 * The hardware Keep backends (sev, tdx, sgx): detection and ranking, the paths a hardware Keep is
 * granted, and the evidence it collects for its CSR, over recorded real evidence. The recorded
 * evidence cannot bind a fresh key (nobody here can sign for AMD or Intel), so the end of each
 * path is a refusal: the Keep's own collector, or the Steward's binding check on the real report.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCertificates } from '../../src/attestation/x509.ts';
import { listBackends, selectBackend } from '../../src/keep/index.ts';
import { mayAttest } from '../../src/keep/hardware/paths.ts';
import { backendChecks, hardwareAvailability, hardwarePaths } from '../../src/keep/hardware/backend.ts';
import { buildCertTable, CollectionError, detectHardware } from '../../src/keep/hardware/index.ts';
import { hardwareEvidenceSource } from '../../src/keep/hardware/source.ts';
import { FakeAttestationFs } from '../../src/keep/hardware/testing.ts';
import { attestationGrants } from '../../src/keep/process/host.ts';
import { requestStewardIdentity, StewardRefusedError } from '../../src/keep/steward.ts';
import { collateralProvider } from '../../src/steward/index.ts';
import { reportIdentity, vcekUrl } from '../../src/collateral/index.ts';
import { startServer } from '../collateral/server.ts';
import { amdRoutes } from '../collateral/fixtures.ts';
import {
  buildCsr,
  decodeSgxEvidence,
  decodeSnpEvidence,
  decodeSnpReportEvidence,
  encodeSnpReportEvidence,
  encodeWorkloadIdentity,
  OID_EVIDENCE_SNP_REPORT,
  parseCsr,
} from '../../src/pki/index.ts';
import { builtinVerifier, listen, Steward, StewardRefusal, type RunningSteward } from '../../src/steward/index.ts';
import { runEnarx } from '../helpers/cli.ts';
import { REPO_ROOT, testdata } from '../helpers/paths.ts';
import { productionCa } from '../steward/helpers.ts';

const TSM = '/sys/kernel/config/tsm/report';
const read = (...p: string[]) => new Uint8Array(readFileSync(testdata(...p)));
const milanReport = read('enarx-steward', 'extracted', 'milan', 'report.bin');
const milanVcek = read('enarx-steward', 'extracted', 'milan', 'vcek.der');
const milanReportData = new Uint8Array(64);
milanReportData.set(createHash('sha384').update(read('enarx-steward', 'extracted', 'milan', 'spki.der')).digest());
const sgxQuote = read('enarx-steward', 'extracted', 'icelake-i5', 'quote.bin');
const tdxQuote = read('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin');
const [ask, ark] = parseCertificates(readFileSync(testdata('attestation', 'sev-snp', 'amd-roots', 'ask_ark_milan.pem'), 'utf8')).map((c) => c.der);
const auxblob = buildCertTable([
  { guid: 'c0b406a4-a803-4952-9743-3fb6014cd0ae', der: ark! },
  { guid: '63da758d-e664-4564-adc5-f4b93be8accd', der: milanVcek },
  { guid: '4ab7b379-bbac-4fe4-a02f-05aef327c782', der: ask! },
]);

const dir = mkdtempSync(join(tmpdir(), 'enarx-hw-backend-'));
const running: RunningSteward[] = [];
after(async () => {
  await Promise.all(running.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** A Gramine /dev/attestation stand-in on disk: DCAP, and a recorded real SGX quote. */
function gramineTree(name: string, quote = sgxQuote): string {
  const root = join(dir, name);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'attestation_type'), 'dcap');
  writeFileSync(join(root, 'user_report_data'), new Uint8Array(64));
  writeFileSync(join(root, 'quote'), quote);
  return root;
}

describe('hardware backends: detection and ranking', () => {
  it('sev, tdx and sgx rank above the process Keep, under the names Enarx uses where it has them', () => {
    const names = listBackends().map((b) => b.name);
    for (const hw of ['sev', 'tdx', 'sgx']) assert.ok(names.indexOf(hw) < names.indexOf('process'), names.join(', '));
    assert.equal(names.at(-1), 'nil');
  });

  it('an SNP guest offers sev only, a TDX guest tdx only, each with the reason for the other', async () => {
    const snp = await detectHardware({ fs: new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport }).addFile('/dev/sev-guest', '') });
    assert.deepEqual(hardwareAvailability('sev', snp), { available: true });
    const notTdx = hardwareAvailability('tdx', snp);
    assert.equal(notTdx.available, false);
    assert.match(notTdx.reason!, /provider is sev_guest \(SEV-SNP\), not tdx_guest \(TDX\): use --backend sev/);
    assert.ok(backendChecks('tdx', snp).some((c) => c.name === 'configfs-tsm provider' && !c.pass));
    assert.ok(backendChecks('sev', snp).every((c) => c.pass), 'every sev check passes in an SNP guest');
    const tdx = await detectHardware({ fs: new FakeAttestationFs().addTsm(TSM, { provider: 'tdx_guest', outblob: tdxQuote }) });
    assert.deepEqual(hardwareAvailability('tdx', tdx), { available: true });
    assert.equal(hardwareAvailability('sev', tdx).available, false);
    assert.match(hardwareAvailability('sgx', tdx).reason!, /Gramine enclave/);
  });

  it('without configfs-tsm the reason is the missing interface, and what to do', async () => {
    const none = await detectHardware({ fs: new FakeAttestationFs(), osRelease: '/proc/osrelease' });
    for (const name of ['sev', 'tdx'] as const) assert.match(hardwareAvailability(name, none).reason!, /tsm\/report is missing: build the kernel with CONFIG_TSM_REPORTS/);
    const noRoot = await detectHardware({ fs: new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport, mkdirError: 'EACCES' }) });
    assert.match(hardwareAvailability('sev', noRoot).reason!, /run as root/);
  });

  it('paths move only through the documented variables, and are made absolute', () => {
    assert.deepEqual(hardwarePaths({}), { tsmRoot: TSM, gramineRoot: '/dev/attestation', devRoot: '/dev' });
    const moved = hardwarePaths({ ENARX_TSM_REPORT_ROOT: 'fake/tsm', ENARX_GRAMINE_ROOT: '/x/att', ENARX_GUEST_DEV_ROOT: '/x/dev' });
    assert.equal(moved.tsmRoot, join(process.cwd(), 'fake/tsm'));
    assert.equal(moved.gramineRoot, '/x/att');
  });

  it('automatic selection looks for the interfaces before loading a hardware backend; a named one is still asked in full', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'enarx-may-attest-'));
    const saved = { tsm: process.env.ENARX_TSM_REPORT_ROOT, gramine: process.env.ENARX_GRAMINE_ROOT };
    try {
      const none = { ENARX_TSM_REPORT_ROOT: join(dir, 'tsm'), ENARX_GRAMINE_ROOT: join(dir, 'attestation') };
      assert.equal(mayAttest(none), false);
      mkdirSync(join(dir, 'tsm'));
      assert.equal(mayAttest(none), true, 'a configfs-tsm directory');
      assert.equal(mayAttest({ ...none, ENARX_TSM_REPORT_ROOT: join(dir, 'absent') }), false);
      mkdirSync(join(dir, 'attestation'));
      assert.equal(mayAttest({ ...none, ENARX_TSM_REPORT_ROOT: join(dir, 'absent') }), true, "Gramine's directory");
      process.env.ENARX_TSM_REPORT_ROOT = join(dir, 'absent');
      process.env.ENARX_GRAMINE_ROOT = join(dir, 'absent');
      for (const hw of listBackends().filter((b) => ['sev', 'tdx', 'sgx'].includes(b.name))) assert.equal(hw.present?.(), false, hw.name);
      assert.equal((await selectBackend()).name, 'process');
      await assert.rejects(selectBackend('sev'), /backend 'sev' is not available on this host: .*absent is missing: build the kernel/);
    } finally {
      for (const [k, v] of [['ENARX_TSM_REPORT_ROOT', saved.tsm], ['ENARX_GRAMINE_ROOT', saved.gramine]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a hardware Keep is granted exactly its interface: the configfs-tsm report directory, or Gramine\'s three files', () => {
    assert.deepEqual(attestationGrants({ via: 'configfs-tsm', root: TSM }), { read: [TSM], write: [TSM] });
    assert.deepEqual(attestationGrants({ via: 'gramine', root: '/dev/attestation' }), {
      read: ['/dev/attestation/attestation_type', '/dev/attestation/user_report_data', '/dev/attestation/quote'],
      write: ['/dev/attestation/user_report_data'],
    });
  });
});

/** A CSR with a fresh P-384 key and a bare SNP report, as a Keep without a host-provisioned VCEK sends it. */
async function snpReportCsr(report: Uint8Array): Promise<Uint8Array> {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  return buildCsr({ keys, attestation: { attestations: [{ type: OID_EVIDENCE_SNP_REPORT, stmt: encodeSnpReportEvidence(report) }], certs: [] } });
}

describe('the evidence a hardware Keep puts in its CSR', () => {
  it('SNP: a P-384 key, the report from configfs-tsm and the VCEK from its certificate table, in Enarx encoding; the entry is removed', async () => {
    const fs = new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport, auxblob });
    const source = hardwareEvidenceSource('snp', { via: 'configfs-tsm', root: TSM }, { fs });
    const got = await source.collect(milanReportData);
    assert.ok('enarxEvidence' in got && got.enarxEvidence.kind === 'snp');
    const ev = decodeSnpEvidence(got.enarxEvidence.der);
    assert.deepEqual(ev.report, milanReport);
    assert.deepEqual(ev.vcek, milanVcek);
    assert.deepEqual(fs.liveEntries, []);
    // A fresh key's report data is not what the recorded report carries: the collector says so.
    await assert.rejects(source.collect(new Uint8Array(64).fill(7)), (e: unknown) => e instanceof CollectionError && /does not carry the report data/.test(e.message));
  });

  it('SNP without a provisioned VCEK: the bare report goes to the Steward, which fetches the VCEK from KDS for its chip and TCB', async () => {
    const fs = new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport });
    const real = hardwareEvidenceSource('snp', { via: 'configfs-tsm', root: TSM }, { fs });
    const got = await real.collect(milanReportData);
    assert.ok('attestation' in got);
    assert.equal(got.attestation.attestations[0]!.type, OID_EVIDENCE_SNP_REPORT);
    assert.deepEqual(decodeSnpReportEvidence(got.attestation.attestations[0]!.stmt), milanReport);

    // A local KDS serving the recorded VCEK at the URL the report's CHIP_ID and REPORTED_TCB name.
    const id = reportIdentity(milanReport, 'Milan');
    const vcekPath = vcekUrl('', 'Milan', id.chipId, id.tcb);
    const kds = await startServer({ ...amdRoutes(), [vcekPath]: { body: milanVcek } });
    const cacheDir = mkdtempSync(join(tmpdir(), 'enarx-hw-kds-'));
    try {
      const ca = await productionCa();
      const steward = await Steward.create({
        key: ca.key,
        chain: ca.chain,
        verify: builtinVerifier(),
        now: () => new Date('2025-12-06T00:00:00Z'),
        collateral: collateralProvider({ cacheDir, amdBaseUrl: kds.url, retries: 0 }),
      });
      const server = await listen(steward, { addr: '127.0.0.1', port: 0 });
      running.push(server);
      const err = await requestStewardIdentity({
        steward: server.url,
        // As a lying collector would: the report data the recorded report carries, not the fresh key's.
        evidence: { ...real, collect: () => real.collect(milanReportData) },
      }).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof StewardRefusedError, String(err));
      assert.equal(err.problem.step, 'binding', err.message);
      assert.equal(kds.hits.get(vcekPath), 1);

      // KDS does not know the chip: a one-line refusal that names the VCEK and says to check it.
      const unknown = await startServer({});
      try {
        const s404 = await Steward.create({
          key: ca.key,
          chain: ca.chain,
          verify: builtinVerifier(),
          now: () => new Date('2025-12-06T00:00:00Z'),
          collateral: collateralProvider({ cacheDir: join(cacheDir, 'empty'), amdBaseUrl: unknown.url, retries: 0 }),
        });
        const refused = await s404.issue(await snpReportCsr(milanReport)).then(() => null, (e: unknown) => e);
        assert.ok(refused instanceof StewardRefusal);
        assert.equal(refused.problem.status, 400);
        assert.match(refused.problem.detail, /^the Steward cannot obtain the collateral this SNP evidence needs: a version 2 report names no product, and neither the Milan nor the Genoa VCEK could be fetched for it: cannot fetch the Genoa VCEK for chip [0-9a-f]{16}… at TCB [0-9-]+: .*HTTP 404 \(not found: check the product, chip id, TCB or FMSPC\)/);
      } finally {
        await unknown.close();
      }
    } finally {
      await kds.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  it('TDX in the csr-attestation attribute, SGX in Enarx\'s extension; the wrong provider is refused', async () => {
    const tdxFs = new FakeAttestationFs().addTsm(TSM, { provider: 'tdx_guest', outblob: tdxQuote });
    const tdx = await hardwareEvidenceSource('tdx', { via: 'configfs-tsm', root: TSM }, { fs: tdxFs }).collect(tdxQuote.slice(568, 632));
    assert.ok('attestation' in tdx && tdx.attestation.attestations.length === 1);
    await assert.rejects(hardwareEvidenceSource('snp', { via: 'configfs-tsm', root: TSM }, { fs: tdxFs }).collect(tdxQuote.slice(568, 632)), /provider tdx_guest gives tdx evidence, not snp/);
    const sgxFs = new FakeAttestationFs().addGramine('/dev/attestation', { attestationType: 'dcap', quote: sgxQuote });
    const sgx = await hardwareEvidenceSource('sgx', { via: 'gramine', root: '/dev/attestation' }, { fs: sgxFs }).collect(sgxQuote.slice(368, 432));
    assert.ok('enarxEvidence' in sgx && sgx.enarxEvidence.kind === 'sgx');
    assert.deepEqual(decodeSgxEvidence(sgx.enarxEvidence.der).quote, sgxQuote);
  });

  it('the real SNP report, replayed for a fresh key, passes the real verifier and is refused at the binding', async () => {
    const ca = await productionCa();
    // Inside the recorded VCEK's and CRLs' validity (enarx-steward README).
    const steward = await Steward.create({ key: ca.key, chain: ca.chain, verify: builtinVerifier(), now: () => new Date('2025-12-06T00:00:00Z') });
    const server = await listen(steward, { addr: '127.0.0.1', port: 0 });
    running.push(server);
    const fs = new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport, auxblob });
    const real = hardwareEvidenceSource('snp', { via: 'configfs-tsm', root: TSM }, { fs });
    let csrKeyCurve = '';
    const err = await requestStewardIdentity({
      steward: server.url,
      // As a lying collector would: the report data the recorded report carries, not the fresh key's.
      evidence: { ...real, collect: () => real.collect(milanReportData) },
      post: async (url, csr) => {
        csrKeyCurve = parseCsr(csr).key.namedCurve ?? "";
        const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/pkcs10' }, body: new Blob([csr as Uint8Array<ArrayBuffer>]) });
        return { status: r.status, contentType: r.headers.get('content-type') ?? undefined, body: new Uint8Array(await r.arrayBuffer()) };
      },
    }).then(() => null, (e: unknown) => e);
    assert.equal(csrKeyCurve, 'P-384', 'an SNP Keep makes a P-384 key, as the VCEK');
    assert.ok(err instanceof StewardRefusedError, String(err));
    assert.equal(err.problem.step, 'binding', err.message);
    assert.match(err.message, /does not bind/);
  });
});

describe('enarx run in a Gramine enclave (a disk tree with a recorded SGX quote)', () => {
  it('platform info finds sgx, and enarx run picks it over the process Keep', async () => {
    const env = { ENARX_GRAMINE_ROOT: gramineTree('gramine-info') };
    const info = await runEnarx(['platform', 'info', '--json'], { env });
    assert.equal(info.code, 0, info.stderr);
    const sgx = (JSON.parse(info.stdout) as { backends: { backend: string; data: { name: string; pass: boolean }[] }[] }).backends.find((b) => b.backend === 'sgx')!;
    assert.deepEqual(sgx.data.map((c) => [c.name, c.pass]), [['Gramine SGX attestation', true]]);
    const run = await runEnarx(['run', '--log-level', 'info', join(REPO_ROOT, 'examples', 'hello.wasm')], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /in the sgx Keep/);
    assert.equal(run.stdout, 'Hello, world!\n');
  });

  it('with a Steward, the Keep writes report data binding its key and the workload, reads the quote, and refuses what does not bind', async () => {
    const root = gramineTree('gramine-run');
    const module = join(REPO_ROOT, 'examples', 'hello.wasm');
    const r = await runEnarx(['run', '--steward', 'http://127.0.0.1:9/', module], { env: { ENARX_GRAMINE_ROOT: root } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the Gramine quote does not carry the report data written to user_report_data/);
    // What the Keep wrote: SHA-256(its P-256 SPKI) then SHA-256 of the workload identity (the module's SHA-384).
    const written = new Uint8Array(readFileSync(join(root, 'user_report_data')));
    const identity = encodeWorkloadIdentity({ digest: { algorithm: 'sha-384', value: new Uint8Array(createHash('sha384').update(readFileSync(module)).digest()) } });
    assert.deepEqual(written.subarray(32), new Uint8Array(createHash('sha256').update(identity).digest()));
    assert.notDeepEqual(written.subarray(0, 32), new Uint8Array(32));
  });

  it('the Keep can reach nothing else: a tree without the quote file fails inside the Keep, and --software-evidence is refused', async () => {
    const root = gramineTree('gramine-noquote');
    rmSync(join(root, 'quote'));
    const r = await runEnarx(['run', '--steward', 'http://127.0.0.1:9/', join(REPO_ROOT, 'examples', 'hello.wasm')], { env: { ENARX_GRAMINE_ROOT: root } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Gramine could not produce a quote \(ENOENT\)/);
    const u = await runEnarx(['run', '--backend', 'sgx', '--steward', 'http://127.0.0.1:9/', '--software-evidence', dir, join(REPO_ROOT, 'examples', 'hello.wasm')], { env: { ENARX_GRAMINE_ROOT: root } });
    assert.equal(u.code, 2, u.stderr);
    assert.match(u.stderr, /the sgx Keep attests with its hardware/);
  });

  it("enarx run and enarx deploy take steward serve's collateral flags and a budget; they reach the Keep's host", async () => {
    for (const command of ['run', 'deploy']) {
      const help = await runEnarx([command, '--help']);
      for (const flag of ['--collateral-dir', '--offline-collateral', '--no-fetch-collateral', '--kds-url', '--pcs-url', '--intel-certs-url', '--collateral-timeout', '--collateral-retries', '--collateral-budget']) {
        assert.ok(help.stdout.includes(flag), `${command}: ${flag} in:\n${help.stdout}`);
      }
    }
    const env = { ENARX_GRAMINE_ROOT: gramineTree('gramine-flags') };
    const hello = join(REPO_ROOT, 'examples', 'hello.wasm');
    for (const [flag, value] of [['--collateral-budget', 'soon'], ['--collateral-timeout', '-1'], ['--collateral-retries', 'x']] as const) {
      const bad = await runEnarx(['run', flag, value, hello], { env });
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, new RegExp(`${flag} must be a non-negative number, got '${value}'`));
      assert.equal(bad.stdout, '', 'nothing ran');
    }
    const cache = join(dir, 'flag-cache');
    const flags = ['--collateral-dir', cache, '--pcs-url', 'http://127.0.0.1:9/pcs', '--intel-certs-url', 'http://127.0.0.1:9/certs', '--collateral-timeout', '3', '--collateral-retries', '0', '--collateral-budget', '4'];
    const said = `collateral for the Keep's CSR: the cache ${cache}, refreshed from https://kdsintf.amd.com, http://127.0.0.1:9/pcs and http://127.0.0.1:9/certs (3 s a download, 0 retries, 4 s in all)`;
    const run = await runEnarx(['--log-level', 'debug', 'run', ...flags, hello], { env: { ...env, ENARX_KDS_URL: '' } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'Hello, world!\n');
    assert.ok(run.stderr.includes(said), run.stderr);
    const deploy = await runEnarx(['--log-level', 'debug', 'deploy', '--backend', 'sgx', ...flags, hello], { env: { ...env, ENARX_KDS_URL: '' } });
    assert.equal(deploy.code, 0, deploy.stderr);
    assert.ok(deploy.stderr.includes(said), deploy.stderr);
    const off = await runEnarx(['--log-level', 'debug', 'run', '--no-fetch-collateral', hello], { env });
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stderr, /collateral for the Keep's CSR: none \(--no-fetch-collateral\)/);
    // Without flags (the fast path), the environment's settings.
    const fromEnv = await runEnarx(['run', '--log-level', 'debug', hello], { env: { ...env, ENARX_COLLATERAL_DIR: cache, ENARX_KDS_URL: 'http://127.0.0.1:9/kds' } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.match(fromEnv.stderr, /collateral for the Keep's CSR: the cache \S+flag-cache, refreshed from http:\/\/127\.0\.0\.1:9\/kds, .*\(10 s a download, 1 retry, 10 s in all\)/);
  });

  it('a named hardware backend that is not there is an error with the reason, never a fallback', async () => {
    const r = await runEnarx(['run', '--backend', 'sev', join(REPO_ROOT, 'examples', 'hello.wasm')], { env: { ENARX_TSM_REPORT_ROOT: join(dir, 'no-tsm') } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /backend 'sev' is not available on this host: .*no-tsm is missing/);
  });
});


