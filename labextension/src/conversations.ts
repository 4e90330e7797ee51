/**
 * The conversations of the notebook the sidebar follows: their list, the one shown, polling for
 * changes made elsewhere (another tab, a `%%assistant` cell), the providers and the export. The
 * turn in progress is the subclass's (model.ts: `AssistantModel`), through the three abstract
 * hooks at the end. No DOM, no JupyterLab runtime.
 */

import { ISignal, Signal } from '@lumino/signaling';

import { AssistantClient } from './api';
import { isUsable } from './providers';
import type { IProvider, IProvidersResponse, ISession, ISessionSummary, ITurnError } from './types';

export interface IConversationsOptions {
  client: AssistantClient;
  /** Seconds between refreshes while the panel is visible (turns started elsewhere). */
  pollSeconds?: number;
}

export abstract class ConversationsModel {
  constructor(options: IConversationsOptions) {
    this._client = options.client;
    this._pollSeconds = options.pollSeconds ?? 3;
  }

  /** The API client (the undo lines of the replies ask it for their turns' changes). */
  get client(): AssistantClient {
    return this._client;
  }

  /** Emitted after every change of what the view shows. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get notebookPath(): string | null {
    return this._path;
  }
  get loading(): boolean {
    return this._loading;
  }
  get sessions(): readonly ISessionSummary[] {
    return this._sessions;
  }
  get session(): ISession | null {
    return this._session;
  }
  /** A request that failed (network, 409, 413, ...), shown until the next action. */
  get error(): string | null {
    return this._error ?? this._connectionError;
  }
  get providers(): IProvidersResponse | null {
    return this._providers;
  }

  /** The provider of the shown session (or the default one), if the server knows it. */
  get provider(): IProvider | null {
    if (!this._providers) {
      return null;
    }
    const name = this._session?.provider ?? this._providers.default;
    return this._providers.providers.find(p => p.name === name) ?? null;
  }

  /**
   * What keeps the assistant from working, with its fix: the provider is unavailable, or the
   * last turn failed because the CLI is missing or not logged in.
   */
  get setupProblem(): string | null {
    const provider = this.provider;
    if (provider && !isUsable(provider)) {
      return provider.problem || `${provider.display_name} is not available.`;
    }
    return this._setupError?.message ?? null;
  }

  /**
   * The provider this panel would use is known not to work (not installed, or not logged in):
   * the view shows the onboarding card instead of the message box until a check says it does.
   */
  get needsSetup(): boolean {
    const provider = this.provider;
    return provider !== null && !isUsable(provider);
  }

  /** A `GET providers` is under way (the onboarding card's "Check again"). */
  get checkingProviders(): boolean {
    return this._checkingProviders;
  }

  // -- what the view calls ---------------------------------------------------------------------

  /** Follow another notebook (null: none is open). */
  async setNotebook(path: string | null): Promise<void> {
    if (path === this._path) {
      return;
    }
    this._detach();
    this._path = path;
    this._session = null;
    this._sessions = [];
    this._pinned = false;
    this._draftKnown = null;
    this._error = null;
    this._loading = path !== null;
    this._emit();
    if (path !== null) {
      await this._load(this._epoch);
    }
  }

  /** The notebook was renamed: same conversations, new path. */
  renamed(path: string): void {
    this._path = path;
    this._emit();
  }

  async loadProviders(refresh = false): Promise<void> {
    this._checkingProviders = true;
    this._emit();
    try {
      this._providers = await this._client.providers(refresh);
      if (refresh) {
        this._setupError = null;
      }
    } catch (err) {
      this._error = `Could not ask the server about providers: ${describe(err)}`;
    } finally {
      this._checkingProviders = false;
    }
    this.warmUp(); // known to work now (e.g. "Check again" after a login): start the agent
    this._emit();
  }

  /**
   * The shown conversation as stored now (what is shown may lag behind a turn run elsewhere),
   * rendered by the server as a file of `format`. Null, with the error shown, if there is no
   * conversation or it cannot be exported.
   */
  async loadExport(format: 'md' | 'ipynb'): Promise<string | null> {
    const shown = this._session;
    if (!shown) {
      this._error = 'There is no conversation to export yet.';
      this._emit();
      return null;
    }
    try {
      return await this._client.exportSession(shown.id, format);
    } catch (err) {
      this._error = `Could not export the conversation: ${describe(err)}`;
      this._emit();
      return null;
    }
  }

  /** Show an error from an action the view carried out (e.g. saving an export). */
  reportError(message: string): void {
    this._error = message;
    this._emit();
  }

  /** Start a new conversation for the notebook; it is created with its first message. */
  newConversation(): void {
    if (this._path === null) {
      return;
    }
    this._detach();
    this._session = null;
    this._pinned = false;
    // Keep showing the draft while a magic or another tab adds to the older conversations.
    this._draftKnown = new Set(this._sessions.map(s => s.id));
    this._error = null;
    this.warmUp();
    this._emit();
  }

  /** Show another conversation of the notebook. */
  async selectSession(id: string): Promise<void> {
    if (this._session?.id === id) {
      return;
    }
    this._detach();
    this._pinned = this._sessions.length > 0 && this._sessions[0].id !== id;
    this._draftKnown = null;
    this._error = null;
    this._loading = true;
    this._emit();
    const epoch = this._epoch;
    try {
      const session = await this._client.getSession(id);
      if (epoch === this._epoch) {
        this._adopt(epoch, session);
      }
    } catch (err) {
      if (epoch === this._epoch) {
        this._error = `Could not load the conversation: ${describe(err)}`;
      }
    } finally {
      if (epoch === this._epoch) {
        this._loading = false;
        this._emit();
      }
    }
  }

  /**
   * Catch up with changes made elsewhere (another tab, a `%%assistant` cell): new
   * conversations, a turn that started or ended. Called periodically while the panel shows.
   */
  async poll(): Promise<void> {
    const path = this._path;
    if (path === null || this._polling || this._turnInHand()) {
      return; // sending, or streaming: the stream tells us everything about the shown session
    }
    this._polling = true;
    const epoch = this._epoch;
    try {
      const { sessions } = await this._client.listSessions(path);
      if (epoch !== this._epoch || this._turnInHand()) {
        return;
      }
      this._sessions = sessions;
      this._connectionError = null;
      const target = this._pollTarget(sessions);
      if (target) {
        const session = await this._client.getSession(target);
        if (epoch === this._epoch && !this._turnInHand()) {
          this._adopt(epoch, session);
        }
      }
      this._emit();
    } catch (err) {
      if (epoch === this._epoch) {
        this._connectionError = `Lost contact with the server: ${describe(err)}`;
        this._emit();
      }
    } finally {
      this._polling = false;
    }
  }

  /**
   * Ask the server to start the agent of the shown conversation, or of the notebook's next
   * new one when none is shown (it may keep it waiting for the next question: `prewarm`).
   * Once per conversation while the panel is shown; `typing`: the user is about to ask (the
   * message box got the focus), which asks again after a minute, as the server may have
   * ended an idle agent meanwhile.
   */
  warmUp(typing = false): void {
    const session = this._session;
    const path = this._path;
    if (!this._active || this._loading || this._turnInHand() || path === null) {
      return;
    }
    if (this._providers === null || this.needsSetup) {
      return; // not known to work (not installed, not logged in): no agent to start yet
    }
    if (session?.status === 'running') {
      return;
    }
    const key = session ? session.id : `new:${path}`;
    const now = Date.now();
    const last = this._warmedAt.get(key);
    if (last !== undefined && (!typing || now - last < WARM_UP_AGAIN_MS)) {
      return;
    }
    this._warmedAt.set(key, now);
    // Only an optimization: a failure changes nothing the user sees.
    const asked = session ? this._client.prewarm(session.id) : this._client.prewarmNotebook(path);
    asked.catch(() => undefined);
  }

  /** Poll every `pollSeconds` while active (the panel is visible). */
  setActive(active: boolean): void {
    this._active = active;
    if (active) {
      this.warmUp();
    } else {
      this._warmedAt.clear(); // shown again: warm up again (the server says if it runs)
    }
    if (active && this._timer === null) {
      this._timer = setInterval(() => void this.poll(), this._pollSeconds * 1000);
      void this.poll();
    } else if (!active && this._timer !== null) {
      clearInterval(this._timer);
      this._timer = null;
    }
  }

  set pollSeconds(seconds: number) {
    this._pollSeconds = Math.max(0.5, seconds);
    if (this._timer !== null) {
      this.setActive(false);
      this.setActive(true);
    }
  }

  dispose(): void {
    this.setActive(false);
    this._detach();
    Signal.clearData(this);
  }

  // -- internals -------------------------------------------------------------------------------

  protected async _load(epoch: number): Promise<void> {
    try {
      const { sessions } = await this._client.listSessions(this._path ?? undefined);
      if (epoch !== this._epoch) {
        return;
      }
      this._sessions = sessions;
      if (sessions.length > 0) {
        const session = await this._client.getSession(sessions[0].id);
        if (epoch !== this._epoch) {
          return;
        }
        this._adopt(epoch, session);
      }
    } catch (err) {
      if (epoch === this._epoch) {
        this._error = `Could not load the conversations of this notebook: ${describe(err)}`;
      }
    } finally {
      if (epoch === this._epoch) {
        this._loading = false;
        this.warmUp(); // the shown conversation's agent, or that of the notebook's first one
        this._emit();
      }
    }
  }

  /** Which session to (re)load after a poll, if any. */
  protected _pollTarget(sessions: ISessionSummary[]): string | null {
    if (this._draftKnown) {
      const fresh = sessions.find(s => !this._draftKnown!.has(s.id));
      return fresh ? fresh.id : null;
    }
    const current = this._session;
    if (!current) {
      return sessions.length > 0 ? sessions[0].id : null;
    }
    if (!this._pinned && sessions.length > 0 && sessions[0].id !== current.id) {
      return sessions[0].id; // a newer conversation was started elsewhere
    }
    const summary = sessions.find(s => s.id === current.id);
    if (!summary) {
      return null; // deleted elsewhere; keep showing what we have
    }
    const changed =
      summary.status !== current.status ||
      summary.updated_at !== current.updated_at ||
      summary.message_count !== messageCount(current);
    return changed ? current.id : null;
  }

  /** Show `session` (and follow its turn, if it runs). */
  protected abstract _adopt(epoch: number, session: ISession): void;

  /** A turn sent or streamed from here: its stream, not polling, keeps the panel current. */
  protected abstract _turnInHand(): boolean;

  /** Forget the shown turn's local state (it goes on on the server). */
  protected abstract _resetTurn(): void;

  /** Stop following the shown turn (it goes on on the server) and forget its local state. */
  protected _detach(): void {
    this._epoch += 1;
    this._resetTurn();
  }

  protected _emit(): void {
    this._changed.emit();
  }

  protected readonly _client: AssistantClient;
  private _pollSeconds: number;
  private _changed = new Signal<this, void>(this);
  protected _epoch = 0;
  protected _path: string | null = null;
  private _loading = false;
  protected _sessions: ISessionSummary[] = [];
  protected _session: ISession | null = null;
  protected _pinned = false;
  protected _draftKnown: Set<string> | null = null;
  protected _error: string | null = null;
  /** Set by a failed poll, cleared by the next one that works. */
  private _connectionError: string | null = null;
  protected _setupError: ITurnError | null = null;
  protected _providers: IProvidersResponse | null = null;
  private _checkingProviders = false;
  private _polling = false;
  private _timer: ReturnType<typeof setInterval> | null = null;
  private _active = false;
  private readonly _warmedAt = new Map<string, number>();
}

const WARM_UP_AGAIN_MS = 60_000;

function messageCount(session: ISession): number {
  return session.messages.length + (session.pending_message ? 1 : 0);
}

export function summaryOf(session: ISession): ISessionSummary {
  return {
    id: session.id,
    path: session.path,
    title: session.title,
    provider: session.provider,
    status: session.status,
    created_at: session.created_at,
    updated_at: session.updated_at,
    message_count: messageCount(session),
    detached: session.detached
  };
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}
