/**
 * The sidebar's state for the active notebook: its conversations (conversations.ts, the base
 * class) and the turn in progress (sent from here, from another tab, or from a kernel), here.
 * No DOM, no JupyterLab runtime: the view renders it and calls its methods.
 *
 * A turn goes idle -> sending -> streaming -> idle (the terminal event, then a refresh of the
 * stored session). A turn this server does not stream (a `%%assistant` cell in a kernel) is
 * `elsewhere`: the session says `running` and the model polls until it is idle again.
 */

import { ApiError } from './api';
import { ConversationsModel, describe, IConversationsOptions, summaryOf } from './conversations';
import {
  applyEvent,
  displayMessages,
  emptyTurn,
  hasReply,
  IDisplayMessage,
  ILiveTurn,
  runningTurnId,
  totalUsage
} from './turn';
import { turnIdOf } from './types';
import type {
  IMessage,
  IReceivedEvent,
  ISession,
  IUsage,
  MessageContext,
  PermissionDecision,
  PermissionScope
} from './types';

export type TurnPhase = 'idle' | 'sending' | 'streaming' | 'elsewhere';

/** Turn errors whose message is a fix the user must apply: shown as a banner too. */
export const SETUP_ERRORS: ReadonlySet<string> = new Set([
  'provider_not_found',
  'not_authenticated'
]);

export interface IModelOptions extends IConversationsOptions {
  /** Reconnect attempts of a dropped event stream before giving up to polling. */
  maxReconnects?: number;
  /** Milliseconds before the first reconnect; doubled each time. */
  reconnectDelayMs?: number;
}

/** The conversations of the followed notebook (conversations.ts), and the turn in progress. */
export class AssistantModel extends ConversationsModel {
  constructor(options: IModelOptions) {
    super(options);
    this._maxReconnects = options.maxReconnects ?? 5;
    this._reconnectDelayMs = options.reconnectDelayMs ?? 500;
  }

  get phase(): TurnPhase {
    return this._phase;
  }
  get cancelling(): boolean {
    return this._cancelling;
  }
  get live(): ILiveTurn | null {
    return this._live;
  }
  get busy(): boolean {
    return this._phase !== 'idle';
  }

  /** The messages to list, in order, including the reply being streamed. */
  get messages(): IDisplayMessage[] {
    return displayMessages(
      this._session?.messages ?? [],
      this._session?.pending_message ?? null,
      this._localUser,
      this._live
    );
  }

  get usage(): IUsage {
    return totalUsage(this._session, this._live);
  }

  /**
   * Send a message; the session is created on the notebook's first message. Resolves false if
   * the message was not accepted (the view then gives the text back to the user).
   */
  async send(content: string, context?: MessageContext | null): Promise<boolean> {
    const path = this._path;
    if (path === null || this._phase !== 'idle' || !content.trim()) {
      return false;
    }
    const epoch = this._epoch;
    this._error = null;
    this._phase = 'sending';
    this._cancelling = false;
    this._cancelWhenStarted = false;
    this._localUser = userMessage(content, context ?? null);
    this._emit();
    let session = this._session;
    try {
      if (!session) {
        session = await this._client.createSession(path);
        if (epoch !== this._epoch) {
          return false;
        }
        this._session = session;
        this._draftKnown = null;
        this._pinned = false;
        this._sessions = [summaryOf(session), ...this._sessions];
      }
      const turnId = await this._client.postMessage(session.id, content, context);
      if (epoch !== this._epoch) {
        return true; // accepted; the panel moved on to another notebook meanwhile
      }
      this._localUser = { ...this._localUser, turn_id: turnId };
      this._setupError = null;
      void this._follow(epoch, session.id, turnId);
      void this._refreshSession(epoch, session.id);
      if (this._cancelWhenStarted) {
        void this.cancel();
      }
      return true;
    } catch (err) {
      if (epoch === this._epoch) {
        this._phase = 'idle';
        this._localUser = null;
        this._error =
          err instanceof ApiError && err.status === 409
            ? 'A turn is already running for this conversation (perhaps from a ' +
              '%%assistant cell or another tab). Wait for it, or press Stop.'
            : `The message was not sent: ${describe(err)}`;
        this._emit();
        if (err instanceof ApiError && err.status === 409) {
          void this.poll();
        }
      }
      return false;
    }
  }

  /** Stop the running turn, wherever it runs. Its partial reply is kept, marked cancelled. */
  async cancel(): Promise<void> {
    const session = this._session;
    if (this._phase === 'idle' || !session) {
      return;
    }
    if (this._phase === 'sending' && !this._localUser?.turn_id) {
      this._cancelWhenStarted = true; // the turn does not exist yet: stop it once it does
      this._cancelling = true;
      this._emit();
      return;
    }
    const epoch = this._epoch;
    this._cancelling = true;
    this._emit();
    try {
      await this._client.cancel(session.id);
    } catch (err) {
      if (epoch === this._epoch) {
        this._cancelling = false;
        this._error = `Could not stop the turn: ${describe(err)}`;
        this._emit();
      }
      return;
    }
    if (epoch === this._epoch && this._phase === 'elsewhere') {
      await this._refreshSession(epoch, session.id);
    }
  }

  /**
   * Answer a tool approval question of the turn streamed here. The card shows the outcome when
   * the server's `permission_answered` event arrives; a refusal (409: the turn runs in a
   * kernel, 404: it no longer waits) is shown as an error.
   */
  async answerPermission(
    requestId: string,
    decision: PermissionDecision,
    scope: PermissionScope = 'once',
    message?: string | null
  ): Promise<void> {
    const session = this._session;
    if (!session || this._answering.has(requestId)) {
      return;
    }
    const epoch = this._epoch;
    this._answering.add(requestId);
    this._error = null;
    this._emit();
    try {
      await this._client.answerPermission(session.id, requestId, decision, scope, message);
    } catch (err) {
      if (epoch === this._epoch) {
        this._error = `The answer was not taken: ${describe(err)}`;
      }
    } finally {
      this._answering.delete(requestId);
      if (epoch === this._epoch) {
        this._emit();
      }
    }
  }

  /** Whether an answer to this question is on its way to the server. */
  answering(requestId: string): boolean {
    return this._answering.has(requestId);
  }

  // -- the turn --------------------------------------------------------------------------------

  /** A turn sent or streamed from here: its stream, not polling, keeps the panel current. */
  protected _turnInHand(): boolean {
    return this._phase === 'sending' || this._phase === 'streaming';
  }

  /** Show `session`; follow its turn if it is running. */
  protected _adopt(epoch: number, session: ISession): void {
    if (this._session?.id !== session.id) {
      this._resetTurn();
    }
    this._session = session;
    this._draftKnown = null;
    if (session.status !== 'running') {
      if (this._phase === 'elsewhere') {
        this._phase = 'idle';
        this._cancelling = false;
      }
      this.warmUp();
      this._emit();
      return;
    }
    const turnId = runningTurnId(session.messages, session.pending_message);
    if (this._phase === 'elsewhere' && turnId === this._elsewhereTurn) {
      this._emit(); // still the same turn in another process: nothing to attach to
      return;
    }
    if (this._phase === 'idle' || this._phase === 'elsewhere') {
      void this._follow(epoch, session.id, turnId);
    }
    this._emit();
  }

  /**
   * Stream the events of turn `turnId` (null: the one the stream starts with, unless that one
   * is already stored), reconnecting with Last-Event-ID when the connection drops. A turn the
   * server has no events of is running elsewhere: then the session is polled instead.
   */
  private async _follow(epoch: number, sessionId: string, turnId: string | null): Promise<void> {
    const abort = new AbortController();
    this._abort = abort;
    this._phase = 'streaming';
    this._live = emptyTurn(turnId);
    this._emit();
    let expected = turnId;
    let lastId: string | null = null;
    let foreign = false;
    let terminal = false;
    let failures = 0;
    const stored = this._session?.messages ?? [];
    const onEvent = ({ id, event }: IReceivedEvent): void => {
      if (foreign || terminal) {
        return;
      }
      const eventTurn = turnIdOf(id) ?? (event.type === 'turn_started' ? event.turn_id : null);
      if (expected === null && eventTurn && !hasReply(stored, eventTurn)) {
        expected = eventTurn;
      }
      if (!eventTurn || eventTurn !== expected) {
        foreign = true; // an older turn of this server, not the running one
        abort.abort();
        return;
      }
      lastId = id;
      this._live = applyEvent(this._live ?? emptyTurn(expected), event);
      if (event.type === 'error' && SETUP_ERRORS.has(event.code)) {
        this._setupError = { code: event.code, message: event.message };
      }
      terminal = this._live.status !== 'running';
      this._emit();
    };
    for (;;) {
      try {
        const end = await this._client.streamEvents(
          sessionId,
          { lastEventId: lastId, signal: abort.signal },
          onEvent
        );
        if (terminal || end.received === 0) {
          break; // done, or the server has nothing (more) for this turn
        }
        failures = 0; // the connection dropped mid-turn: resume after the last event
      } catch (err) {
        if (foreign) {
          break;
        }
        if (abort.signal.aborted || epoch !== this._epoch) {
          return; // detached: another notebook or conversation is shown now
        }
        failures += 1;
        if (failures > this._maxReconnects) {
          this._error = `The reply stream broke: ${describe(err)}`;
          break;
        }
        await sleep(this._reconnectDelayMs * 2 ** (failures - 1));
      }
      if (abort.signal.aborted || epoch !== this._epoch) {
        if (!foreign) {
          return;
        }
        break;
      }
    }
    if (epoch !== this._epoch || (abort.signal.aborted && !foreign)) {
      return;
    }
    if (this._abort === abort) {
      this._abort = null;
    }
    if (terminal) {
      await this._refreshSession(epoch, sessionId);
      return;
    }
    // Not streamable here: a kernel runs it, or this server restarted. The session's status
    // (polled) says when it is over.
    this._phase = 'elsewhere';
    this._elsewhereTurn = expected;
    this._live = null;
    this._emit();
    void this.poll();
  }

  /** Reload the stored session; ends the shown turn if it is over. */
  private async _refreshSession(epoch: number, sessionId: string): Promise<void> {
    const seq = ++this._refreshSeq;
    let session: ISession;
    try {
      session = await this._client.getSession(sessionId);
    } catch (err) {
      if (epoch === this._epoch) {
        this._error = `Could not reload the conversation: ${describe(err)}`;
        if (this._phase === 'streaming' && this._live?.status !== 'running') {
          this._phase = 'idle'; // the reply as streamed stays shown
          this._cancelling = false;
        }
        this._emit();
      }
      return;
    }
    if (epoch !== this._epoch || session.id !== this._session?.id || seq < this._appliedSeq) {
      return; // stale: another notebook is shown, or a later refresh already landed
    }
    this._appliedSeq = seq;
    this._session = session;
    const liveTurn = this._live?.turnId ?? null;
    const ended =
      (this._phase === 'streaming' && this._live?.status !== 'running') ||
      (this._phase === 'elsewhere' && session.status === 'idle');
    if (ended) {
      this._phase = 'idle';
      this._cancelling = false;
      if (!liveTurn || hasReply(session.messages, liveTurn)) {
        this._live = null;
      }
      this._localUser = null;
    } else if (this._localUser?.turn_id && userStored(session, this._localUser.turn_id)) {
      this._localUser = null;
    }
    this._sessions = this._sessions.map(s => (s.id === session.id ? summaryOf(session) : s));
    this._emit();
  }

  protected _resetTurn(): void {
    this._abort?.abort();
    this._abort = null;
    this._phase = 'idle';
    this._cancelling = false;
    this._cancelWhenStarted = false;
    this._live = null;
    this._localUser = null;
    this._elsewhereTurn = null;
  }

  private readonly _maxReconnects: number;
  private readonly _reconnectDelayMs: number;
  private _phase: TurnPhase = 'idle';
  private _cancelling = false;
  private _cancelWhenStarted = false;
  private _answering = new Set<string>();
  private _live: ILiveTurn | null = null;
  private _localUser: IMessage | null = null;
  private _elsewhereTurn: string | null = null;
  private _abort: AbortController | null = null;
  private _refreshSeq = 0;
  private _appliedSeq = 0;
}

function userMessage(content: string, context: MessageContext | null): IMessage {
  return {
    id: `local-${Date.now()}`,
    role: 'user',
    content,
    created_at: new Date().toISOString(),
    turn_id: null,
    status: 'complete',
    tools: [],
    context
  };
}

function userStored(session: ISession, turnId: string): boolean {
  return (
    session.pending_message?.turn_id === turnId ||
    session.messages.some(m => m.role === 'user' && m.turn_id === turnId)
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}
