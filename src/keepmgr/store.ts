/**
 * Keep records in node:sqlite: one row per Keep, its sealed output records, and one row per
 * daemon run, so that a daemon that was killed can say on restart which Keeps it lost.
 */
import { DatabaseSync } from 'node:sqlite';
import { encode, decode } from 'cborg';
import type { KeepLimits, KeepListener, KeepUsage } from './keep/host.ts';

export const KEEP_STATES = ['starting', 'ready', 'challenged', 'running', 'exited', 'crashed', 'killed', 'stopped', 'refused', 'lost'] as const;
export type KeepState = (typeof KEEP_STATES)[number];
export const LIVE_STATES: readonly KeepState[] = ['starting', 'ready', 'challenged', 'running'];

export interface Verdict {
  accepted: boolean;
  reasons: string[];
  /** Who says so: the client that attested the Keep (the daemon itself is not trusted to judge). */
  by: string;
  at: string;
}

export interface KeepRecord {
  id: string;
  owner: string;
  backend: string;
  state: KeepState;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
  pid: number | null;
  exitCode: number | null;
  reason: string | null;
  limits: KeepLimits;
  usage: KeepUsage | null;
  /** How the Keep was handed out: from the warm pool or started on demand. */
  origin: 'pool' | 'cold';
  evidenceKind: string | null;
  publicKey: Uint8Array | null;
  reportData: Uint8Array | null;
  evidence: Uint8Array | null;
  /** DER certificates that came with the evidence (SNP: VCEK, ASK, ARK). */
  certs: Uint8Array[];
  nonce: Uint8Array | null;
  /** The certificate chain (PEM, leaf first) a Steward issued to the Keep. */
  certificate: string | null;
  /** The Keep's listen files, bound by the host: where clients connect (TLS ends inside the Keep). */
  ports: KeepListener[];
  verdict: Verdict | null;
  outputRecords: number;
}

interface Row {
  [k: string]: unknown;
}

export interface OpenResult {
  store: KeepStore;
  /** Keeps that were live when a previous daemon ended without shutting down. */
  lost: KeepRecord[];
  /** The previous run, when it did not stop cleanly. */
  uncleanRun: { pid: number; startedAt: string } | null;
}

const toBytes = (v: unknown): Uint8Array | null => (v instanceof Uint8Array ? new Uint8Array(v) : null);

export class KeepStore {
  readonly db: DatabaseSync;
  readonly runId: number;

  private constructor(db: DatabaseSync, runId: number) {
    this.db = db;
    this.runId = runId;
  }

  static open(path: string): OpenResult {
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL, started_at TEXT NOT NULL, stopped_at TEXT);
      CREATE TABLE IF NOT EXISTS keeps (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, backend TEXT NOT NULL, state TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, ended_at TEXT, pid INTEGER, exit_code INTEGER, reason TEXT,
        limits TEXT NOT NULL, usage TEXT, origin TEXT NOT NULL, evidence_kind TEXT, public_key BLOB, report_data BLOB,
        evidence BLOB, certs BLOB, nonce BLOB, certificate BLOB, verdict TEXT, run_id INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS records (keep_id TEXT NOT NULL, seq INTEGER NOT NULL, ct BLOB NOT NULL, PRIMARY KEY (keep_id, seq));`);
    // Columns added after the first release: a store made by an older daemon gains them.
    const columns = new Set((db.prepare('PRAGMA table_info(keeps)').all() as Row[]).map((c) => String(c.name)));
    if (!columns.has('ports')) db.exec('ALTER TABLE keeps ADD COLUMN ports TEXT');
    const prev = db.prepare('SELECT id, pid, started_at FROM runs WHERE stopped_at IS NULL ORDER BY id DESC LIMIT 1').get() as Row | undefined;
    const now = new Date().toISOString();
    const runId = Number(db.prepare('INSERT INTO runs (pid, started_at) VALUES (?, ?)').run(process.pid, now).lastInsertRowid);
    const store = new KeepStore(db, runId);
    const live = LIVE_STATES.map(() => '?').join(',');
    const lostRows = db.prepare(`SELECT * FROM keeps WHERE state IN (${live}) AND run_id < ?`).all(...LIVE_STATES, runId) as Row[];
    const lost: KeepRecord[] = [];
    for (const row of lostRows) {
      const reason = `lost: the keep manager (pid ${String(prev?.pid ?? '?')}) ended while this Keep was ${String(row.state)}; the Keep exited with its pipe`;
      db.prepare('UPDATE keeps SET state = ?, reason = ?, ended_at = ?, updated_at = ? WHERE id = ?').run('lost', reason, now, now, String(row.id));
      lost.push(store.get(String(row.id))!);
    }
    db.prepare('UPDATE runs SET stopped_at = ? WHERE stopped_at IS NULL AND id < ?').run(now, runId);
    return { store, lost, uncleanRun: prev ? { pid: Number(prev.pid), startedAt: String(prev.started_at) } : null };
  }

  insert(r: KeepRecord): void {
    this.db
      .prepare(`INSERT INTO keeps (id, owner, backend, state, created_at, updated_at, pid, limits, origin, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(r.id, r.owner, r.backend, r.state, r.createdAt, r.updatedAt, r.pid, JSON.stringify(r.limits), r.origin, this.runId);
  }

  update(id: string, fields: Partial<Omit<KeepRecord, 'id' | 'owner' | 'createdAt' | 'outputRecords'>>): void {
    const cols: string[] = [];
    const vals: Array<string | number | null | Uint8Array> = [];
    const map: Record<string, string> = {
      state: 'state', endedAt: 'ended_at', pid: 'pid', exitCode: 'exit_code', reason: 'reason', evidenceKind: 'evidence_kind',
      publicKey: 'public_key', reportData: 'report_data', evidence: 'evidence', nonce: 'nonce', certificate: 'certificate', backend: 'backend', origin: 'origin',
    };
    for (const [k, v] of Object.entries(fields)) {
      if (k === 'certs') {
        cols.push('certs = ?');
        vals.push(encode(v as Uint8Array[]));
      } else if (k === 'usage' || k === 'verdict' || k === 'limits' || k === 'ports') {
        cols.push(`${k} = ?`);
        vals.push(v === null ? null : JSON.stringify(v));
      } else if (map[k]) {
        cols.push(`${map[k]} = ?`);
        vals.push(v as string | number | null | Uint8Array);
      }
    }
    cols.push('updated_at = ?');
    vals.push(new Date().toISOString());
    this.db.prepare(`UPDATE keeps SET ${cols.join(', ')} WHERE id = ?`).run(...vals, id);
  }

  get(id: string): KeepRecord | undefined {
    const row = this.db.prepare('SELECT k.*, (SELECT COUNT(*) FROM records r WHERE r.keep_id = k.id) AS n FROM keeps k WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(owner?: string): KeepRecord[] {
    const sql = 'SELECT k.*, (SELECT COUNT(*) FROM records r WHERE r.keep_id = k.id) AS n FROM keeps k';
    const rows = (owner === undefined ? this.db.prepare(`${sql} ORDER BY created_at DESC`).all() : this.db.prepare(`${sql} WHERE owner = ? ORDER BY created_at DESC`).all(owner)) as Row[];
    return rows.map(fromRow);
  }

  addRecord(keepId: string, seq: number, ct: Uint8Array): void {
    this.db.prepare('INSERT OR IGNORE INTO records (keep_id, seq, ct) VALUES (?, ?, ?)').run(keepId, seq, ct);
  }

  records(keepId: string, fromSeq: number): Array<{ seq: number; ct: Uint8Array }> {
    const rows = this.db.prepare('SELECT seq, ct FROM records WHERE keep_id = ? AND seq >= ? ORDER BY seq').all(keepId, fromSeq) as Row[];
    return rows.map((r) => ({ seq: Number(r.seq), ct: new Uint8Array(r.ct as Uint8Array) }));
  }

  /** Marks a clean shutdown, so the next start does not report lost Keeps for this run. */
  close(): void {
    this.db.prepare('UPDATE runs SET stopped_at = ? WHERE id = ?').run(new Date().toISOString(), this.runId);
    this.db.close();
  }
}

function fromRow(row: Row): KeepRecord {
  return {
    id: String(row.id),
    owner: String(row.owner),
    backend: String(row.backend),
    state: String(row.state) as KeepState,
    createdAt: String(row.created_at),
    updatedAt: String(row.updated_at),
    endedAt: row.ended_at == null ? null : String(row.ended_at),
    pid: row.pid == null ? null : Number(row.pid),
    exitCode: row.exit_code == null ? null : Number(row.exit_code),
    reason: row.reason == null ? null : String(row.reason),
    limits: JSON.parse(String(row.limits)) as KeepLimits,
    usage: row.usage == null ? null : (JSON.parse(String(row.usage)) as KeepUsage),
    origin: String(row.origin) as 'pool' | 'cold',
    evidenceKind: row.evidence_kind == null ? null : String(row.evidence_kind),
    publicKey: toBytes(row.public_key),
    reportData: toBytes(row.report_data),
    evidence: toBytes(row.evidence),
    certs: row.certs instanceof Uint8Array ? (decode(row.certs) as Uint8Array[]) : [],
    nonce: toBytes(row.nonce),
    certificate: typeof row.certificate === 'string' ? row.certificate : null,
    ports: row.ports == null ? [] : (JSON.parse(String(row.ports)) as KeepListener[]),
    verdict: row.verdict == null ? null : (JSON.parse(String(row.verdict)) as Verdict),
    outputRecords: Number(row.n ?? 0),
  };
}
