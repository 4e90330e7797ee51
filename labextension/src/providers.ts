/**
 * What it takes to set up each provider: the commands the onboarding card offers to copy, and
 * whether a provider can answer at all. `jupyter assistant doctor` (doctor.py) says the same.
 */

import type { IProvider } from './types';

export interface ISetupStep {
  /** What the step does, e.g. "Install" or "Log in". */
  label: string;
  /** A command to run in a terminal on the Jupyter server. */
  command: string;
  /** What to do after, or instead. */
  note?: string;
}

export interface IProviderSetup {
  install: ISetupStep;
  login: ISetupStep;
}

/** The built-in providers. Others (ACP agents, plugins) only have their `problem` text. */
export const PROVIDER_SETUP: Readonly<Record<string, IProviderSetup>> = {
  claude: {
    install: { label: 'Install', command: 'npm install -g @anthropic-ai/claude-code' },
    login: {
      label: 'Log in',
      command: 'claude',
      note: "then type /login. Or set ANTHROPIC_API_KEY in the server's environment."
    }
  },
  codex: {
    install: { label: 'Install', command: 'npm install -g @openai/codex' },
    login: {
      label: 'Log in',
      command: 'codex login',
      note: "Or set OPENAI_API_KEY (or CODEX_API_KEY) in the server's environment."
    }
  },
  gemini: {
    install: { label: 'Install', command: 'npm install -g @google/gemini-cli' },
    login: {
      label: 'Log in',
      command: 'gemini',
      note: "then log in with Google. Or set GEMINI_API_KEY in the server's environment."
    }
  }
};

/**
 * Can this provider answer? Its CLI runs and its credentials are not known to be missing
 * (`unknown` gets the benefit of the doubt: only a billed call could tell).
 */
export function isUsable(provider: IProvider): boolean {
  return provider.available && provider.credentials !== 'missing';
}

export type SetupState = 'ready' | 'not-installed' | 'not-logged-in';

export function setupState(provider: IProvider): SetupState {
  if (!provider.available) {
    return 'not-installed';
  }
  return provider.credentials === 'missing' ? 'not-logged-in' : 'ready';
}

/** The steps still to do for a provider, in order (none when it is ready). */
export function stepsFor(provider: IProvider): ISetupStep[] {
  const setup = PROVIDER_SETUP[provider.name];
  const state = setupState(provider);
  if (!setup || state === 'ready') {
    return [];
  }
  return state === 'not-installed' ? [setup.install, setup.login] : [setup.login];
}

/** The providers with `first` (the one in use) at the top, the others in the server's order. */
export function inSetupOrder(providers: readonly IProvider[], first: string): IProvider[] {
  return [...providers.filter(p => p.name === first), ...providers.filter(p => p.name !== first)];
}
