/**
 * The reply of a running turn, folded from its stream events. Pure functions, so that a replay
 * of the same events (a reload, a reconnect) always builds the same reply.
 */

import type {
  AssistantEvent,
  IMessage,
  IPermissionRecord,
  IToolCall,
  ITurnError,
  IUsage,
  MessageStatus
} from './types';

export type LiveStatus = 'running' | MessageStatus;

export interface ILiveTurn {
  turnId: string | null;
  text: string;
  thinking: string;
  tools: IToolCall[];
  notices: string[];
  /** Tool approval questions, in the order asked. */
  permissions: IPermissionRecord[];
  usage: IUsage | null;
  status: LiveStatus;
  error: ITurnError | null;
}

export function emptyTurn(turnId: string | null = null): ILiveTurn {
  return {
    turnId,
    text: '',
    thinking: '',
    tools: [],
    notices: [],
    permissions: [],
    usage: null,
    status: 'running',
    error: null
  };
}

/** The turn after one more event. Events after the terminal one change nothing. */
export function applyEvent(turn: ILiveTurn, event: AssistantEvent): ILiveTurn {
  if (turn.status !== 'running') {
    return turn;
  }
  switch (event.type) {
    case 'turn_started':
      return { ...turn, turnId: event.turn_id };
    case 'text':
      return { ...turn, text: turn.text + event.text };
    case 'thinking':
      return { ...turn, thinking: turn.thinking + event.text };
    case 'tool_use': {
      const call: IToolCall = {
        id: event.id,
        name: event.name,
        input: event.input,
        result: undefined,
        is_error: false,
        text_offset: turn.tools.find(t => t.id === event.id)?.text_offset ?? turn.text.length
      };
      return { ...turn, tools: upsertTool(turn.tools, call) };
    }
    case 'tool_result': {
      const known = turn.tools.find(t => t.id === event.id);
      const call: IToolCall = {
        id: event.id,
        name: known?.name ?? '',
        input: known?.input,
        result: event.content,
        is_error: Boolean(event.is_error),
        text_offset: known?.text_offset ?? turn.text.length
      };
      return { ...turn, tools: upsertTool(turn.tools, call) };
    }
    case 'usage':
      // Per turn and cumulative: the latest one replaces the previous.
      return {
        ...turn,
        usage: {
          input_tokens: event.input_tokens || 0,
          output_tokens: event.output_tokens || 0,
          cost_usd: event.cost_usd || 0
        }
      };
    case 'permission_denied':
    case 'notice':
      return { ...turn, notices: [...turn.notices, event.message] };
    case 'permission_request': {
      const asked: IPermissionRecord = {
        request_id: event.request_id,
        tool_name: event.tool_name,
        input: event.input,
        summary: event.summary,
        decision: null,
        scope: 'once',
        message: null,
        by: null
      };
      const others = turn.permissions.filter(p => p.request_id !== event.request_id);
      return { ...turn, permissions: [...others, asked] };
    }
    case 'permission_answered':
      return {
        ...turn,
        permissions: turn.permissions.map(p =>
          p.request_id === event.request_id
            ? {
                ...p,
                decision: event.decision,
                scope: event.scope,
                message: event.message,
                by: event.by
              }
            : p
        )
      };
    case 'done':
      return { ...ended(turn), status: 'complete' };
    case 'cancelled':
      return { ...ended(turn), status: 'cancelled' };
    case 'error':
      return {
        ...ended(turn),
        status: 'error',
        error: { code: event.code, message: event.message }
      };
    default:
      return turn; // an event type of a newer server
  }
}

/** The turn is over: a question still waiting will never be answered. */
function ended(turn: ILiveTurn): ILiveTurn {
  if (!turn.permissions.some(p => p.decision === null && p.by === null)) {
    return turn;
  }
  return {
    ...turn,
    permissions: turn.permissions.map(p =>
      p.decision === null && p.by === null ? { ...p, by: 'ended' } : p
    )
  };
}

/** The questions that still wait for the user's answer. */
export function waitingPermissions(
  permissions: IPermissionRecord[] | undefined
): IPermissionRecord[] {
  return (permissions ?? []).filter(p => p.decision === null && p.by === null);
}

function upsertTool(tools: IToolCall[], call: IToolCall): IToolCall[] {
  const index = tools.findIndex(t => t.id === call.id);
  if (index < 0) {
    return [...tools, call];
  }
  const copy = tools.slice();
  copy[index] = call;
  return copy;
}

/** A piece of a reply as shown: a run of its text, or a tool card. */
export type ReplyPart = { kind: 'text'; text: string } | { kind: 'tool'; call: IToolCall };

/**
 * A reply's text and tool cards in the order they came: a tool with a `text_offset` goes after
 * that many characters of the text (in stream order, or as stored), one without goes after it.
 */
export function replyParts(content: string, tools: IToolCall[]): ReplyPart[] {
  const placed = tools
    .map((call, index) => {
      const offset = call.text_offset;
      const at =
        typeof offset === 'number' && Number.isFinite(offset)
          ? Math.max(0, Math.min(content.length, Math.floor(offset)))
          : content.length;
      return { call, index, at };
    })
    .sort((a, b) => a.at - b.at || a.index - b.index);
  const parts: ReplyPart[] = [];
  let from = 0;
  for (const { call, at } of placed) {
    if (at > from) {
      parts.push({ kind: 'text', text: content.slice(from, at) });
      from = at;
    }
    parts.push({ kind: 'tool', call });
  }
  if (from < content.length) {
    parts.push({ kind: 'text', text: content.slice(from) });
  }
  return parts.filter(part => part.kind === 'tool' || part.text.trim() !== '');
}

/** A tool of a reply that was stopped (cancelled, interrupted) and has no proper result. */
export function toolStopped(call: IToolCall, status: LiveStatus): boolean {
  if (status !== 'cancelled' && status !== 'interrupted') {
    return false;
  }
  return call.is_error || call.result === undefined || call.result === null;
}

/** The live turn shown as an assistant message (its status is `running` until it ends). */
export interface IDisplayMessage extends Omit<IMessage, 'status'> {
  status: LiveStatus;
  thinking?: string;
}

export function liveMessage(turn: ILiveTurn): IDisplayMessage {
  return {
    id: `live-${turn.turnId ?? 'pending'}`,
    role: 'assistant',
    content: turn.text,
    created_at: '',
    turn_id: turn.turnId,
    status: turn.status,
    tools: turn.tools,
    usage: turn.usage,
    error: turn.error,
    notices: turn.notices,
    permissions: turn.permissions,
    thinking: turn.thinking
  };
}

/**
 * What the panel lists: the stored messages, the user message of a turn the store has not
 * taken yet, and the reply being streamed. A message is never shown twice, whichever of the
 * session refresh and the stream arrived first.
 */
export function displayMessages(
  stored: IMessage[],
  pending: IMessage | null,
  localUser: IMessage | null,
  live: ILiveTurn | null
): IDisplayMessage[] {
  const out: IDisplayMessage[] = [];
  const liveId = live?.turnId ?? null;
  for (const message of stored) {
    if (liveId && message.role === 'assistant' && message.turn_id === liveId) {
      continue; // the stream's version is the one being updated
    }
    out.push(message);
  }
  const hasUser = (turnId: string | null): boolean =>
    turnId !== null && out.some(m => m.role === 'user' && m.turn_id === turnId);
  if (pending && !hasUser(pending.turn_id)) {
    out.push(pending);
  }
  if (localUser && !(localUser.turn_id && hasUser(localUser.turn_id))) {
    out.push(localUser);
  }
  if (live) {
    out.push(liveMessage(live));
  }
  return out;
}

/**
 * The id of the turn a `running` session is in: its pending message's, or that of the last
 * user message whose reply is not final yet (absent, or a `streaming` checkpoint).
 */
export function runningTurnId(messages: IMessage[], pending: IMessage | null): string | null {
  if (pending?.turn_id) {
    return pending.turn_id;
  }
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message.role === 'user' && message.turn_id) {
      return hasReply(messages, message.turn_id) ? null : message.turn_id;
    }
  }
  return null;
}

/** True if the session holds the final reply of `turnId` (its turn is over). */
export function hasReply(messages: IMessage[], turnId: string): boolean {
  return messages.some(
    m => m.role === 'assistant' && m.turn_id === turnId && m.status !== 'streaming'
  );
}

/**
 * Session usage plus the running turn's: the store adds a turn's usage when it stores its reply,
 * so the live usage counts until the session holds that reply.
 */
export function totalUsage(
  session: { usage: IUsage; messages: IMessage[] } | null,
  live: ILiveTurn | null
): IUsage {
  const base = session?.usage ?? { input_tokens: 0, output_tokens: 0, cost_usd: 0 };
  const stored = !!(session && live?.turnId && hasReply(session.messages, live.turnId));
  const turn = live && !stored ? live.usage : null;
  if (!turn) {
    return { ...base };
  }
  return {
    input_tokens: base.input_tokens + turn.input_tokens,
    output_tokens: base.output_tokens + turn.output_tokens,
    cost_usd: base.cost_usd + turn.cost_usd
  };
}
