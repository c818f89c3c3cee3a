// The whole `enarx run` suite again in the nil Keep: cli.test.ts runs in the default (strongest)
// backend, the process Keep, so between the two files both Keeps must give identical results.
process.env.ENARX_BACKEND = 'nil';
await import('./cli.test.ts');
