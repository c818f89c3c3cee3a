import type { KeepCollateralSettings, KeepCollateralSource } from '../collateral/keep.ts';

/**
 * A Keep host's collateral source (src/collateral/keep.ts), loaded when the Keep first asks: one
 * source, so one download budget, for the Keep's whole start.
 */
export function lazyKeepCollateralSource(settings: KeepCollateralSettings | undefined): KeepCollateralSource {
  let source: KeepCollateralSource | undefined;
  return async (request) => (source ??= (await import('../collateral/keep.ts')).keepCollateralSource(settings))(request);
}
