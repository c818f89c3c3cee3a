/** The collateral flags of commands that start a Keep, turned into a Keep host's settings. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keepCollateralSettings } from '../../src/cli/commands/platform-collateral.ts';

describe('keepCollateralSettings', () => {
  it('reads the download settings and the budget, and refuses bad values as usage errors', () => {
    const s = keepCollateralSettings({ collateralTimeout: '2', collateralRetries: '0', collateralBudget: '3', collateralDir: '/tmp/x' });
    assert.equal(s.budgetMs, 3000);
    assert.equal(s.options?.timeoutMs, 2000);
    assert.equal(s.options?.retries, 0);
    assert.equal(s.options?.cacheDir, '/tmp/x');
    assert.throws(() => keepCollateralSettings({ collateralTimeout: 'soon' }), { name: 'UsageError', message: "--collateral-timeout must be a non-negative number, got 'soon'" });
    assert.throws(() => keepCollateralSettings({ collateralBudget: '-1' }), { name: 'UsageError', message: "--collateral-budget must be a non-negative number, got '-1'" });
  });

  it('--no-fetch-collateral: nothing is downloaded, so the download settings are not read', () => {
    assert.deepEqual(keepCollateralSettings({ fetchCollateral: false, collateralTimeout: 'soon', collateralBudget: 'never' }), { fetch: false });
  });
});
