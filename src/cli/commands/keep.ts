import type { Command } from 'commander';
import { EnarxError, UsageError } from '../errors.ts';
import { log, printJson } from '../output.ts';
import { addAttestOptions, addConnectionOptions, attestOptionsFrom, cliErrors, clientFrom, loadSession, printPayload } from '../keepmgr-client.ts';

function int(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new UsageError(`${name} must be a whole number, not '${v}'`);
    return Number(v);
  };
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? '-' : `${(bytes / 1048576).toFixed(1)} MiB`;
}

export function register(program: Command): void {
  const keep = program.command('keep').description('manage Keeps through a keep manager (enarx keepmgr serve)');

  addConnectionOptions(keep.command('create').description('start a Keep (from the warm pool when it fits)'))
    .option('--backend <name>', 'Keep backend (see the contracts)', 'process')
    .option('--memory <MiB>', 'memory limit', int('--memory'))
    .option('--cpu <seconds>', 'CPU-time limit', int('--cpu'))
    .option('--fds <n>', 'descriptor limit', int('--fds'))
    .action(async (o: Record<string, unknown>) => {
      const client = await clientFrom(o);
      const limits: Record<string, number> = {};
      if (o.memory !== undefined) limits.memoryMiB = o.memory as number;
      if (o.cpu !== undefined) limits.cpuSeconds = o.cpu as number;
      if (o.fds !== undefined) limits.descriptors = o.fds as number;
      const k = await cliErrors(() => client.create({ backend: o.backend as string, limits }));
      if (o.json) printJson(k);
      else process.stdout.write(`${k.id}\n`);
    });

  addConnectionOptions(keep.command('list').description('list your Keeps (all of them for an admin)')).action(async (o: Record<string, unknown>) => {
    const client = await clientFrom(o);
    const { keeps } = await cliErrors(() => client.list());
    if (o.json) {
      printJson({ keeps });
      return;
    }
    if (keeps.length === 0) {
      process.stderr.write('no Keeps\n');
      return;
    }
    process.stdout.write(`${'KEEP'.padEnd(36)}  ${'STATE'.padEnd(10)}  ${'MEMORY'.padStart(10)}  ${'CPU'.padStart(8)}  VERDICT\n`);
    for (const k of keeps) {
      const verdict = k.attestation.verdict ? (k.attestation.verdict.accepted ? 'accepted' : 'refused') : '-';
      process.stdout.write(`${k.id}  ${k.state.padEnd(10)}  ${mib(k.usage?.rssBytes).padStart(10)}  ${k.usage ? `${(k.usage.cpuMs / 1000).toFixed(2)}s`.padStart(8) : '-'.padStart(8)}  ${verdict}\n`);
    }
  });

  addConnectionOptions(keep.command('info').description('show one Keep: state, limits, use, evidence, verdict').argument('<keep>', 'Keep id')).action(
    async (id: string, o: Record<string, unknown>) => {
      const client = await clientFrom(o);
      const k = await cliErrors(() => client.get(id));
      if (o.json) {
        printJson(k);
        return;
      }
      const lines = [
        `Keep      ${k.id}`,
        `owner     ${k.owner}`,
        `backend   ${k.backend} (${k.origin === 'pool' ? 'from the warm pool' : 'started on demand'})`,
        `state     ${k.state}${k.reason ? ` (${k.reason})` : ''}${k.exitCode !== null ? `, exit ${k.exitCode}` : ''}`,
        `limits    memory ${k.limits.memoryMiB} MiB, CPU ${k.limits.cpuSeconds} s, ${k.limits.descriptors} descriptors`,
        `use       ${k.usage ? `memory ${mib(k.usage.rssBytes)}, CPU ${(k.usage.cpuMs / 1000).toFixed(2)} s, ${k.usage.descriptors} descriptors` : '-'}`,
        `evidence  ${k.attestation.kind ?? '-'}`,
        `verdict   ${k.attestation.verdict ? `${k.attestation.verdict.accepted ? 'accepted' : 'refused'}: ${k.attestation.verdict.reasons.join('; ')}` : 'none reported'}`,
        `ports     ${k.ports.length ? k.ports.map((p) => `${p.name} ${p.address}:${p.port}`).join(', ') : '-'}`,
        `certificate ${k.certificate ? describeChain(k.certificate) : 'none (no Steward)'}`,
        `output    ${k.outputRecords} sealed record(s)`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    },
  );

  addAttestOptions(addConnectionOptions(keep.command('attest').description('challenge a Keep with a fresh nonce and verify its evidence and key binding').argument('<keep>', 'Keep id'))).action(
    async (id: string, o: Record<string, unknown>) => {
      const client = await clientFrom(o);
      const { attestKeep } = await import('../../keepmgr/client.ts');
      const opts = await attestOptionsFrom(o);
      const a = await cliErrors(() => attestKeep(client, id, opts));
      if (o.json) printJson({ keep: a.keepId, accepted: true, kind: a.kind, reasons: a.reasons, publicKey: Buffer.from(a.publicKey).toString('base64url'), result: a.result });
      else process.stdout.write(`accepted: ${a.reasons.join('; ')}\n`);
    },
  );

  addConnectionOptions(keep.command('logs').description("read a Keep's sealed output (needs the session file written by enarx deploy --session)").argument('<keep>', 'Keep id'))
    .option('--session <file>', 'session file holding the output key')
    .option('-f, --follow', 'keep reading until the Keep ends')
    .action(async (id: string, o: Record<string, unknown>) => {
      if (typeof o.session !== 'string') throw new UsageError("the Keep's output is sealed to the client that provisioned it", 'pass --session FILE, the file enarx deploy --session wrote');
      const session = loadSession(o.session);
      if (session.keepId !== id) throw new UsageError(`the session file is for Keep ${session.keepId}, not ${id}`);
      const client = await clientFrom(o);
      const { followOutput } = await import('../../keepmgr/client.ts');
      const end = await cliErrors(() => followOutput(client, session, printPayload, { follow: Boolean(o.follow) }));
      if (end.exit) log('info', `workload exited with code ${end.exit.code}`);
      else if (end.host && !end.host.live) throw new EnarxError(`the Keep ended without a sealed exit record; the host says: ${String(end.host.state)}${end.host.reason ? ` (${String(end.host.reason)})` : ''}`);
    });

  addConnectionOptions(keep.command('stop').description('stop a Keep').argument('<keep>', 'Keep id')).action(async (id: string, o: Record<string, unknown>) => {
    const client = await clientFrom(o);
    const k = await cliErrors(() => client.stop(id));
    if (o.json) printJson(k);
    else process.stderr.write(`Keep ${k.id} is ${k.state}\n`);
  });
}

/** One line about a Keep's certificate chain: the leaf's subject, issuer and expiry. */
function describeChain(pem: string): string {
  const { X509Certificate } = process.getBuiltinModule('node:crypto');
  const count = pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  try {
    const leaf = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)![0]);
    // A Steward names a Keep in its subject alternative names; its subject may be empty.
    const oneLine = (dn: string | undefined) => (dn ?? '').split('\n').join(', ');
    const name = oneLine(leaf.subject) || leaf.subjectAltName || '(no name)';
    return `${name}, issued by ${oneLine(leaf.issuer) || '(no name)'}, valid to ${leaf.validTo} (${count} certificate(s))`;
  } catch {
    return `${count} certificate(s) that do not parse`;
  }
}
