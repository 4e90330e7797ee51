/**
 * What it takes to set up each provider: the commands the onboarding card offers to copy (they
 * come from the provider itself, through `GET providers`, as `jupyter assistant doctor`'s
 * fixes do), and whether a provider can answer at all.
 */

import type { IProvider, ISetupStep } from './types';

export type { ISetupStep } from './types';

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
  const setup = provider.setup;
  const state = setupState(provider);
  if (!setup || state === 'ready') {
    return [];
  }
  const steps = state === 'not-installed' ? [setup.install, setup.login] : [setup.login];
  return steps.filter((step): step is ISetupStep => !!step);
}

/** The providers with `first` (the one in use) at the top, the others in the server's order. */
export function inSetupOrder(providers: readonly IProvider[], first: string): IProvider[] {
  return [...providers.filter(p => p.name === first), ...providers.filter(p => p.name !== first)];
}
