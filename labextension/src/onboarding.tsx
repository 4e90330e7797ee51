/**
 * The onboarding card: shown instead of the message box while the provider the panel would use
 * cannot run. Per provider, the commands that install it and log it in, with Copy buttons, and
 * "Check again" (`GET providers?refresh=1`).
 */

import { Clipboard } from '@jupyterlab/apputils';
import * as React from 'react';

import type { AssistantModel } from './model';
import { inSetupOrder, isUsable, ISetupStep, setupState, stepsFor } from './providers';
import type { IProvider } from './types';

const STATE_TEXT = {
  ready: 'ready',
  'not-installed': 'not installed',
  'not-logged-in': 'not logged in'
};

function CommandLine(props: { step: ISetupStep }): JSX.Element {
  const { step } = props;
  const [copied, setCopied] = React.useState(false);
  React.useEffect(() => {
    if (!copied) {
      return;
    }
    const timer = setTimeout(() => setCopied(false), 2000);
    return () => clearTimeout(timer);
  }, [copied]);
  return (
    <div className="jp-Assistant-setupStep">
      <div className="jp-Assistant-setupLabel">{step.label}</div>
      <div className="jp-Assistant-command">
        <code>{step.command}</code>
        <button
          type="button"
          className="jp-mod-styled jp-Assistant-copy"
          aria-label={`Copy: ${step.command}`}
          title="Copy to the clipboard"
          onClick={() => {
            Clipboard.copyToSystem(step.command);
            setCopied(true);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      {step.note && <div className="jp-Assistant-setupNote">{step.note}</div>}
    </div>
  );
}

function ProviderSetup(props: { provider: IProvider; inUse: boolean }): JSX.Element {
  const { provider, inUse } = props;
  const state = setupState(provider);
  const steps = stepsFor(provider);
  return (
    <div
      className="jp-Assistant-setupProvider"
      data-provider={provider.name}
      data-state={state}
      aria-label={`${provider.display_name}: ${STATE_TEXT[state]}`}
    >
      <div className="jp-Assistant-setupName">
        {provider.display_name}
        {inUse ? ' (used here)' : ''}
        <span className="jp-Assistant-setupState">{STATE_TEXT[state]}</span>
      </div>
      {steps.map(step => (
        <CommandLine key={step.label} step={step} />
      ))}
      {/* What the server found, with its own fix (the only one for ACP agents and plugins). */}
      {state !== 'ready' && provider.problem && (
        <div className="jp-Assistant-setupNote jp-Assistant-setupProblem">{provider.problem}</div>
      )}
    </div>
  );
}

export function OnboardingCard(props: { model: AssistantModel }): JSX.Element | null {
  const { model } = props;
  const response = model.providers;
  const current = model.provider;
  if (!response || !current) {
    return null;
  }
  const [first, ...others] = inSetupOrder(response.providers, current.name);
  const ready = others.filter(isUsable);
  return (
    <section className="jp-Assistant-onboarding" aria-label="Set up the assistant">
      <h3 className="jp-Assistant-onboardingTitle">Set up {current.display_name}</h3>
      <p className="jp-Assistant-onboardingText">
        The assistant runs {current.display_name} on the Jupyter server, and it is{' '}
        {STATE_TEXT[setupState(current)]} there yet. Run these commands in a terminal on the server
        (File › New › Terminal), then check again.
      </p>
      <ProviderSetup provider={first} inUse={true} />
      <div className="jp-Assistant-onboardingActions">
        <button
          type="button"
          className="jp-mod-styled jp-mod-accept"
          disabled={model.checkingProviders}
          onClick={() => void model.loadProviders(true)}
        >
          {model.checkingProviders ? 'Checking…' : 'Check again'}
        </button>
        <span className="jp-Assistant-setupNote">
          Or run <code>jupyter assistant doctor</code> in a terminal for a full check.
        </span>
      </div>
      {ready.map(p => (
        <p key={p.name} className="jp-Assistant-setupNote">
          {p.display_name} is ready. To use it here, set{' '}
          <code>c.AssistantExtension.default_provider = &quot;{p.name}&quot;</code> in the
          server&apos;s config and restart it.
        </p>
      ))}
      {others.length > 0 && (
        <details className="jp-Assistant-otherProviders">
          <summary>Other providers</summary>
          {others.map(p => (
            <ProviderSetup key={p.name} provider={p} inUse={false} />
          ))}
        </details>
      )}
    </section>
  );
}
