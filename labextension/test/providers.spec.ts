import { inSetupOrder, isUsable, setupState, stepsFor } from '../src/providers';
import type { IProvider, IProviderSetup } from '../src/types';

// As `GET providers` sends them (the providers' install_step and login_step).
const SETUP: Record<string, IProviderSetup> = {
  claude: {
    install: { label: 'Install', command: 'npm install -g @anthropic-ai/claude-code', note: null },
    login: { label: 'Log in', command: 'claude', note: 'then type /login.' }
  },
  codex: {
    install: { label: 'Install', command: 'npm install -g @openai/codex', note: null },
    login: { label: 'Log in', command: 'codex login', note: 'Or set OPENAI_API_KEY.' }
  },
  gemini: {
    install: { label: 'Install', command: 'npm install -g @google/gemini-cli', note: null },
    login: { label: 'Log in', command: 'gemini', note: 'then log in with Google.' }
  },
  acp: { install: null, login: null },
  plugin: {
    install: { label: 'Install', command: 'pip install my-agent', note: null },
    login: null
  }
};

function provider(name: string, extra: Partial<IProvider> = {}): IProvider {
  return {
    name,
    display_name: name,
    available: true,
    version: '1.0',
    problem: null,
    credentials: 'unknown',
    setup: SETUP[name],
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

  it('offers the steps a provider declares, and none from a server that sends none', () => {
    expect(stepsFor(provider('plugin', { available: false })).map(s => s.command)).toEqual([
      'pip install my-agent'
    ]);
    expect(stepsFor(provider('plugin', { credentials: 'missing' }))).toEqual([]);
    expect(stepsFor(provider('claude', { available: false, setup: undefined }))).toEqual([]);
  });

  it('lists the provider in use first', () => {
    const all = [provider('acp'), provider('claude'), provider('codex')];
    expect(inSetupOrder(all, 'codex').map(p => p.name)).toEqual(['codex', 'acp', 'claude']);
  });
});
