/**
 * Shapes of the assistant's HTTP API (docs/rest-api.yml), as the sidebar reads them.
 */

export type SessionStatus = 'idle' | 'running';
/** `streaming`: the partial reply of a running turn, saved as it grows (by its server or kernel). */
export type MessageStatus = 'complete' | 'cancelled' | 'error' | 'interrupted' | 'streaming';
export type Role = 'user' | 'assistant' | 'system';

export interface IProvider {
  name: string;
  display_name: string;
  available: boolean;
  version: string | null;
  /** Why it cannot be used, with the fix (e.g. the install command). */
  problem: string | null;
  credentials?: 'present' | 'missing' | 'unknown';
  /** How to install the CLI and log in, as the provider says (null: its `problem` says how). */
  setup?: IProviderSetup;
}

export interface ISetupStep {
  /** What the step does, e.g. "Install" or "Log in". */
  label: string;
  /** A command to run in a terminal on the Jupyter server. */
  command: string;
  /** What to do after, or instead. */
  note?: string | null;
}

export interface IProviderSetup {
  install: ISetupStep | null;
  login: ISetupStep | null;
}

export interface IProvidersResponse {
  default: string;
  providers: IProvider[];
}

/** `SessionSummary` of jupyter_assistant/summaries.py (checked by tests/test_frontend_types.py). */
export interface ISessionSummary {
  id: string;
  path: string;
  title: string;
  provider: string;
  status: SessionStatus;
  created_at: string;
  updated_at: string;
  message_count: number;
  /** The notebook was deleted: the conversation is kept, but no longer follows a file. */
  detached: boolean;
}

export interface ISessionsResponse {
  sessions: ISessionSummary[];
  problems?: string[];
}

export interface IToolCall {
  id: string;
  name: string;
  input?: unknown;
  result?: unknown;
  is_error: boolean;
  /** Characters of the reply's text before the call (where its card goes in the reply). */
  text_offset?: number | null;
}

export interface IUsage {
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
}

export interface ITurnError {
  code: string;
  message: string;
}

/** A tool call the user was asked about, and its answer (null while it waits). */
export interface IPermissionRecord {
  request_id: string;
  tool_name: string;
  input?: unknown;
  summary: string;
  decision: 'allow' | 'deny' | null;
  scope: 'once' | 'session';
  message?: string | null;
  /** `user`: answered; `timeout`: nobody answered in time; `ended`: the turn ended first. */
  by: 'user' | 'timeout' | 'ended' | null;
}

export type PermissionDecision = 'allow' | 'deny';
export type PermissionScope = 'once' | 'session';

export interface IMessage {
  id: string;
  role: Role;
  content: string;
  created_at: string;
  turn_id: string | null;
  status: MessageStatus;
  tools: IToolCall[];
  context?: Record<string, unknown> | null;
  usage?: IUsage | null;
  error?: ITurnError | null;
  notices?: string[];
  permissions?: IPermissionRecord[];
}

export interface ISession {
  version: number;
  id: string;
  path: string;
  working_dir: string;
  provider: string;
  provider_session_id: string | null;
  context: Record<string, unknown>;
  messages: IMessage[];
  pending_message: IMessage | null;
  title: string;
  created_at: string;
  updated_at: string;
  usage: IUsage;
  status: SessionStatus;
  detached: boolean;
  /** Why it is detached, in words for the user (the notebook was deleted or moved away). */
  detached_reason?: string | null;
  /** The notebook's resolved file path on the server (the store's index key). */
  notebook_key: string;
  /** "For this session" answers to tool approval questions. */
  approvals: IApproval[];
}

/** A "for this session" answer: the same tool on the same subject is not asked again. */
export interface IApproval {
  tool_name: string;
  pattern: string;
  decision: PermissionDecision;
  message?: string | null;
  created_at: string;
}

// -- undo a turn (docs/rest-api.yml: TurnChanges, RevertResponse, RevertConflict) -----------

export type ChangeStatus = 'added' | 'modified' | 'deleted';

/** A file a turn changed, relative to the session's working folder. */
export interface IFileChange {
  path: string;
  status: ChangeStatus;
  /** A unified diff (text files). */
  diff?: string;
  binary?: boolean;
  /** Over `checkpoint_max_file_bytes`: no diff, and its content was not kept. */
  too_large?: boolean;
}

/** A cell of the session's notebook a turn changed, by cell id. */
export interface ICellChange {
  id: string;
  status: ChangeStatus;
  diff: string;
}

/** What the checkpoints leave out (ignored names, virtualenvs, links, too large). */
export interface INotCovered {
  path: string;
  reason: string;
}

/** `GET sessions/{id}/turns/{turn_id}/changes`. */
export interface ITurnChanges {
  files: IFileChange[];
  cells: ICellChange[];
  not_covered: INotCovered[];
  /** The turn was undone. */
  reverted: boolean;
}

/** `POST sessions/{id}/turns/{turn_id}/revert`: what was undone. */
export interface IRevertResponse {
  /** The turns undone, in order. */
  reverted: string[];
  restored: string[];
  /** Files whose content was not kept (too large), so not restored. */
  missed: string[];
  /**
   * The turns changed the notebook's cells where it was open: where they were put back. `open`:
   * the open notebook shows them already (do not reload it from disk); `file`: in its file.
   */
  cells?: 'open' | 'file';
}

/** The 409 of a revert: a turn runs, or (`conflicts`) files changed since. */
export interface IRevertConflict {
  message: string;
  conflicts?: string[];
}

/** The `context` of a message: what the user chose to send along from the notebook. */
export type MessageContext = Record<string, unknown>;

// -- stream events (SSE `event:` = `type`) ----------------------------------------------------
// As jupyter_assistant/events.py defines them (checked by tests/test_frontend_types.py).

export interface ITurnStartedEvent {
  type: 'turn_started';
  turn_id: string;
  provider: string;
}
export interface ITextEvent {
  type: 'text';
  text: string;
}
export interface IThinkingEvent {
  type: 'thinking';
  text: string;
}
export interface IToolUseEvent {
  type: 'tool_use';
  id: string;
  name: string;
  input: unknown;
}
export interface IToolResultEvent {
  type: 'tool_result';
  id: string;
  content: unknown;
  is_error: boolean;
}
export interface IUsageEvent extends IUsage {
  type: 'usage';
}
export interface IPermissionDeniedEvent {
  type: 'permission_denied';
  tool_name: string;
  input: unknown;
  message: string;
}
export interface INoticeEvent {
  type: 'notice';
  level: 'info' | 'warning';
  message: string;
}
export interface IPermissionRequestEvent {
  type: 'permission_request';
  request_id: string;
  tool_name: string;
  input: unknown;
  summary: string;
}
export interface IPermissionAnsweredEvent {
  type: 'permission_answered';
  request_id: string;
  decision: PermissionDecision;
  scope: PermissionScope;
  message: string | null;
  by: 'user' | 'timeout';
}
export interface IDoneEvent {
  type: 'done';
  provider_session_id: string | null;
  cost_usd: number;
  duration_ms: number;
}
export interface IErrorEvent {
  type: 'error';
  code: string;
  message: string;
}
export interface ICancelledEvent {
  type: 'cancelled';
}

export type TerminalEvent = IDoneEvent | IErrorEvent | ICancelledEvent;

export type AssistantEvent =
  | ITurnStartedEvent
  | ITextEvent
  | IThinkingEvent
  | IToolUseEvent
  | IToolResultEvent
  | IUsageEvent
  | IPermissionDeniedEvent
  | INoticeEvent
  | IPermissionRequestEvent
  | IPermissionAnsweredEvent
  | TerminalEvent;

export const TERMINAL_TYPES: ReadonlySet<string> = new Set(['done', 'error', 'cancelled']);

export function isTerminal(event: AssistantEvent): event is TerminalEvent {
  return TERMINAL_TYPES.has(event.type);
}

/** An event as received: its SSE id (`<turn_id>:<seq>`) and the parsed data. */
export interface IReceivedEvent {
  id: string | null;
  event: AssistantEvent;
}

/** The turn id part of an SSE event id `<turn_id>:<seq>`. */
export function turnIdOf(eventId: string | null): string | null {
  if (!eventId) {
    return null;
  }
  const cut = eventId.lastIndexOf(':');
  return cut > 0 ? eventId.slice(0, cut) : null;
}
