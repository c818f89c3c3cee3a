import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { verifyEvidence } from '../../src/attestation/index.ts';
import { parseCertificates } from '../../src/attestation/x509.ts';
import {
  buildCertTable,
  CollectionError,
  collectEvidence,
  collectGramine,
  collectTsm,
  detectHardware,
  parseCertTable,
} from '../../src/keep/hardware/index.ts';
import { FakeAttestationFs } from '../../src/keep/hardware/testing.ts';
import { testdata } from '../helpers/paths.ts';

const TSM = '/sys/kernel/config/tsm/report';
const GRAMINE = '/dev/attestation';
const read = (...p: string[]) => new Uint8Array(readFileSync(testdata(...p)));

// The Milan CSR's report binds SHA-384(SPKI) || 16 zero bytes (enarx-steward README §4.1).
const milanReport = read('enarx-steward', 'extracted', 'milan', 'report.bin');
const milanReportData = new Uint8Array(64);
milanReportData.set(createHash('sha384').update(read('enarx-steward', 'extracted', 'milan', 'spki.der')).digest());
const vcek = read('enarx-steward', 'extracted', 'milan', 'vcek.der');
const [ask, ark] = parseCertificates(readFileSync(testdata('attestation', 'sev-snp', 'amd-roots', 'ask_ark_milan.pem'), 'utf8')).map((c) => c.der);
const GUID = { vcek: '63da758d-e664-4564-adc5-f4b93be8accd', ask: '4ab7b379-bbac-4fe4-a02f-05aef327c782', ark: 'c0b406a4-a803-4952-9743-3fb6014cd0ae' };
// Hosts list the table in any order; the Keep hands over leaf first.
const auxblob = buildCertTable([
  { guid: GUID.ark, der: ark! },
  { guid: GUID.vcek, der: vcek },
  { guid: GUID.ask, der: ask! },
]);

const tdxQuote = read('attestation', 'tdx', 'phala-tdx-v4', 'quote.bin');
const tdxReportData = tdxQuote.slice(568, 632);
const sgxQuote = read('enarx-steward', 'extracted', 'icelake-i5', 'quote.bin');
const sgxReportData = sgxQuote.slice(368, 432);

function snpFake(extra: { concurrentWrites?: number; mkdirError?: string; outblobError?: string } = {}) {
  return new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport, auxblob, ...extra });
}

async function rejectsWith(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof CollectionError && message.test(err.message));
}

describe('configfs-tsm collection', () => {
  it('collects an SNP report and its certificate table, leaf first, and removes the entry', async () => {
    const fs = snpFake();
    const got = await collectEvidence(milanReportData, { fs });
    assert.equal(got.kind, 'snp');
    assert.equal(got.source, 'configfs-tsm:sev_guest');
    assert.deepEqual(got.evidence, milanReport);
    assert.deepEqual(got.auxCerts, [vcek, ask, ark]);
    assert.equal(fs.created.length, 1);
    assert.deepEqual(fs.liveEntries, []);
  });
  it('collects a TDX quote', async () => {
    const fs = new FakeAttestationFs().addTsm(TSM, { provider: 'tdx_guest', outblob: tdxQuote });
    const got = await collectEvidence(tdxReportData, { fs });
    assert.equal(got.kind, 'tdx');
    assert.deepEqual(got.evidence, tdxQuote);
    assert.deepEqual(got.auxCerts, []);
  });
  it('starts over when another writer moved the generation, and gives up after three tries', async () => {
    const fs = snpFake({ concurrentWrites: 2 });
    const got = await collectTsm(milanReportData, { fs, root: TSM });
    assert.equal(got.generation, 1);
    assert.equal(fs.created.length, 3);
    assert.deepEqual(fs.liveEntries, []);
    const busy = snpFake({ concurrentWrites: 3 });
    await rejectsWith(collectTsm(milanReportData, { fs: busy, root: TSM }), /generation moved from 0 to 2 during one request on each of 3 attempts/);
    assert.deepEqual(busy.liveEntries, []);
  });
  it('counts a privlevel write as one generation', async () => {
    const got = await collectTsm(milanReportData, { fs: snpFake(), root: TSM, privlevel: 0 });
    assert.equal(got.generation, 2);
    await rejectsWith(
      collectTsm(tdxReportData, { fs: new FakeAttestationFs().addTsm(TSM, { provider: 'tdx_guest', outblob: tdxQuote }), root: TSM, privlevel: 1 }),
      /privlevel applies only to SEV-SNP/,
    );
  });
  it('refuses evidence that does not carry the report data written', async () => {
    const other = milanReportData.slice();
    other[0]! ^= 1;
    const fs = snpFake();
    await rejectsWith(collectEvidence(other, { fs }), /outblob does not carry the report data written to inblob/);
    assert.deepEqual(fs.liveEntries, []);
  });
  it('explains missing permissions, firmware failures, odd providers and outblobs', async () => {
    await rejectsWith(collectEvidence(milanReportData, { fs: snpFake({ mkdirError: 'EACCES' }) }), /run as root, or grant this user write access/);
    const failing = snpFake({ outblobError: 'EIO' });
    await rejectsWith(collectEvidence(milanReportData, { fs: failing }), /reading outblob failed \(EIO\)/);
    assert.deepEqual(failing.liveEntries, []);
    await rejectsWith(
      collectEvidence(milanReportData, { fs: new FakeAttestationFs().addTsm(TSM, { provider: 'arm_cca_guest', outblob: milanReport }) }),
      /provider 'arm_cca_guest' is not supported/,
    );
    await rejectsWith(
      collectEvidence(milanReportData, { fs: new FakeAttestationFs().addTsm(TSM, { provider: 'sev_guest', outblob: milanReport.subarray(0, 100) }) }),
      /outblob \(100 bytes\) is not a report/,
    );
  });
  it('takes exactly 64 bytes of report data, before touching the interface', async () => {
    const fs = snpFake();
    await rejectsWith(collectEvidence(new Uint8Array(48), { fs }), /exactly 64 bytes, got 48/);
    assert.deepEqual(fs.created, []);
  });
  it('says what is missing when no interface exists', async () => {
    await rejectsWith(collectEvidence(milanReportData, { fs: new FakeAttestationFs() }), /no attestation interface found: neither configfs-tsm/);
  });
});

describe('Gramine /dev/attestation collection', () => {
  it('writes user_report_data and reads the DCAP quote', async () => {
    const fs = new FakeAttestationFs().addGramine(GRAMINE, { attestationType: 'dcap', quote: sgxQuote });
    const got = await collectEvidence(sgxReportData, { fs });
    assert.deepEqual(got, { kind: 'sgx', evidence: sgxQuote, auxCerts: [], source: 'gramine' });
    assert.deepEqual(fs.userReportData(GRAMINE), sgxReportData);
  });
  it('explains a Gramine without DCAP, and refuses a quote for other report data', async () => {
    for (const [type, message] of [
      ['none', /sgx.remote_attestation = "dcap"/],
      ['epid', /attestation type 'epid' is not supported/],
    ] as const) {
      const fs = new FakeAttestationFs().addGramine(GRAMINE, { attestationType: type, quote: sgxQuote });
      await rejectsWith(collectEvidence(sgxReportData, { fs }), message);
    }
    const fs = new FakeAttestationFs().addGramine(GRAMINE, { attestationType: 'dcap', quote: sgxQuote });
    await rejectsWith(collectGramine(new Uint8Array(64), { fs }), /does not carry the report data/);
    const junk = new FakeAttestationFs().addGramine(GRAMINE, { attestationType: 'dcap', quote: new Uint8Array(10) });
    await rejectsWith(collectGramine(sgxReportData, { fs: junk }), /10 bytes that are not an SGX quote v3/);
  });
  it('works on a real directory given as the root', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'enarx-gramine-'));
    try {
      writeFileSync(join(dir, 'attestation_type'), 'dcap\n');
      writeFileSync(join(dir, 'quote'), sgxQuote);
      writeFileSync(join(dir, 'user_report_data'), new Uint8Array(64));
      const got = await collectEvidence(sgxReportData, { gramineRoot: dir, tsmRoot: join(dir, 'no-tsm') });
      assert.equal(got.kind, 'sgx');
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'user_report_data'))), sgxReportData);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('collected evidence verifies', () => {
  it('SNP: the report and the auxblob certificates, with the report data bound', async () => {
    const got = await collectEvidence(milanReportData, { fs: snpFake() });
    const result = await verifyEvidence({
      evidence: got.evidence,
      certs: got.auxCerts,
      crls: [read('enarx-steward', 'extracted', 'milan', 'crl-milan.der')],
      now: new Date('2023-02-01T00:00:00Z'),
    });
    assert.equal(result.verified, true, JSON.stringify(result.failure));
    assert.equal(result.reportData, Buffer.from(milanReportData).toString('hex'));
  });
  it('TDX and SGX: the quotes, with their collateral', async () => {
    const tdx = await collectEvidence(tdxReportData, { fs: new FakeAttestationFs().addTsm(TSM, { provider: 'tdx_guest', outblob: tdxQuote }) });
    const tdxResult = await verifyEvidence({
      evidence: tdx.evidence,
      collateral: [read('attestation', 'tdx', 'phala-tdx-v4', 'collateral.json')],
      now: new Date('2025-07-01T00:00:00Z'),
    });
    assert.equal(tdxResult.verified, true, JSON.stringify(tdxResult.failure));
    const sgx = await collectEvidence(sgxReportData, { fs: new FakeAttestationFs().addGramine(GRAMINE, { attestationType: 'dcap', quote: sgxQuote }) });
    const x = (f: string) => read('enarx-steward', 'extracted', 'icelake-i5', f);
    const sgxResult = await verifyEvidence({
      evidence: sgx.evidence,
      collateral: [{ name: 'tcb-info.json', bytes: x('tcb-info.json') }],
      certs: [x('tcb-signing.der')],
      crls: [x('crl-root.der'), x('crl-pck-processor.der')],
      now: new Date('2023-02-01T00:00:00Z'),
    });
    assert.equal(sgxResult.verified, true, JSON.stringify(sgxResult.failure));
  });
});

describe('SNP certificate table', () => {
  it('round-trips and names the GUIDs', () => {
    const entries = parseCertTable(auxblob);
    assert.deepEqual(entries.map((e) => e.name), ['ark', 'vcek', 'ask']);
    assert.deepEqual(entries[1]!.der, vcek);
  });
  it('rejects tables without a terminator or with entries outside the table', () => {
    assert.throws(() => parseCertTable(auxblob.subarray(0, 20)), /no terminating entry/);
    assert.throws(() => parseCertTable(auxblob.subarray(0, 60)), /entry 0 points outside the table/);
    const bad = auxblob.slice();
    new DataView(bad.buffer).setUint32(20, 0xffffff, true);
    assert.throws(() => parseCertTable(bad), /points outside the table/);
  });
  it('never throws anything but a CollectionError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseCertTable(bytes);
        } catch (err) {
          if (!(err instanceof CollectionError)) throw err;
        }
      }),
    );
  });
});

describe('hardware detection for enarx platform info', () => {
  it('finds an SEV-SNP guest through configfs-tsm', async () => {
    const fs = snpFake().addFile('/dev/sev-guest', '');
    const report = await detectHardware({ fs });
    assert.deepEqual(report.kinds, ['snp']);
    assert.deepEqual(
      report.checks.map((c) => [c.name, c.pass]),
      [
        ['confidential VM guest device', true],
        ['configfs-tsm report interface', true],
        ['configfs-tsm provider', true],
        ['Gramine SGX attestation', false],
      ],
    );
    assert.deepEqual(fs.liveEntries, []);
  });
  it('explains an old kernel, a missing driver and a missing Gramine', async () => {
    const fs = new FakeAttestationFs().addFile('/proc/sys/kernel/osrelease', '6.1.0-13-amd64\n');
    const report = await detectHardware({ fs });
    assert.deepEqual(report.kinds, []);
    const mesg = Object.fromEntries(report.checks.map((c) => [c.name, c.mesg]));
    assert.match(mesg['configfs-tsm report interface']!, /Linux 6.1.0-13-amd64 is older than 6.7/);
    assert.match(mesg['confidential VM guest device']!, /not an SEV-SNP or TDX guest/);
    assert.match(mesg['Gramine SGX attestation']!, /does not exist/);
  });
  it('explains a provider it cannot probe without permission, and a Gramine without DCAP', async () => {
    const fs = snpFake({ mkdirError: 'EACCES' }).addGramine(GRAMINE, { attestationType: 'none', quote: sgxQuote });
    const report = await detectHardware({ fs });
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    assert.match(byName['configfs-tsm provider']!.mesg!, /run as root/);
    assert.equal(byName['Gramine SGX attestation']!.pass, false);
    assert.match(byName['Gramine SGX attestation']!.mesg!, /remote_attestation = "dcap"/);
  });
  it('finds Gramine with DCAP', async () => {
    const fs = new FakeAttestationFs().addGramine(GRAMINE, { attestationType: 'dcap', quote: sgxQuote });
    assert.deepEqual((await detectHardware({ fs })).kinds, ['sgx']);
  });
});
