import { inSetupOrder, isUsable, setupState, stepsFor } from '../src/providers';
import type { IProvider } from '../src/types';

function provider(name: string, extra: Partial<IProvider> = {}): IProvider {
  return {
    name,
    display_name: name,
    available: true,
    version: '1.0',
    problem: null,
    credentials: 'unknown',
    ...extra
  };
}

describe('provider setup', () => {
  it('counts a provider usable unless it is missing or known not logged in', () => {
    expect(isUsable(provider('claude'))).toBe(true); // unknown: benefit of the doubt
    expect(isUsable(provider('claude', { credentials: 'present' }))).toBe(true);
    expect(isUsable(provider('codex', { credentials: 'missing' }))).toBe(false);
    expect(isUsable(provider('claude', { available: false }))).toBe(false);
    expect(isUsable(provider('claude', { credentials: undefined }))).toBe(true);
  });

  it('offers install then login for a missing CLI, login alone when not logged in', () => {
    const missing = provider('claude', { available: false, problem: 'not found' });
    expect(setupState(missing)).toBe('not-installed');
    expect(stepsFor(missing).map(s => [s.label, s.command])).toEqual([
      ['Install', 'npm install -g @anthropic-ai/claude-code'],
      ['Log in', 'claude']
    ]);
    const loggedOut = provider('codex', { credentials: 'missing' });
    expect(setupState(loggedOut)).toBe('not-logged-in');
    expect(stepsFor(loggedOut).map(s => s.command)).toEqual(['codex login']);
    expect(stepsFor(provider('gemini', { available: false }))[0].command).toBe(
      'npm install -g @google/gemini-cli'
    );
    expect(stepsFor(provider('claude'))).toEqual([]); // ready
    expect(stepsFor(provider('acp', { available: false }))).toEqual([]); // its problem says how
  });

  it('lists the provider in use first', () => {
    const all = [provider('acp'), provider('claude'), provider('codex')];
    expect(inSetupOrder(all, 'codex').map(p => p.name)).toEqual(['codex', 'acp', 'claude']);
  });
});
