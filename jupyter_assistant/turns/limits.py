"""What one turn may produce: events, reply text, cost. Past a limit the turn is stopped
(``Turn.request_stop``) with an error that names the setting to raise."""

from __future__ import annotations

from .. import events
from ..events import Event
from .turn import RunnerSettings, Turn

# Events kept per turn for reconnecting clients; text deltas are coalesced, so only a provider
# gone wrong gets near this.
MAX_TURN_EVENTS = 100_000


def within_limits(turn: Turn, event: Event, settings: RunnerSettings) -> bool:
    """Whether ``event`` may be published; if not, the turn is being stopped."""
    if len(turn.events) >= MAX_TURN_EVENTS:
        message = f"The turn produced over {MAX_TURN_EVENTS} events; it was stopped."
        turn.request_stop("oversize", events.error("provider_failed", message))
        return False
    if event["type"] == "text":
        limit = settings.max_reply_bytes
        if turn.reply.text_length + len(event["text"]) > limit:
            # Bounded memory against a provider that prints without end.
            message = (
                f"The reply grew past {limit} characters; the turn was stopped "
                "(c.AssistantExtension.max_reply_bytes)."
            )
            turn.request_stop("oversize", events.error("provider_failed", message))
            return False
    return True


def check_cost(turn: Turn, settings: RunnerSettings) -> None:
    """After a ``usage`` event: stop the turn once the conversation passed its cost cap."""
    cap = settings.max_session_cost_usd
    if cap is not None and turn.cost_before + turn.reply.usage.cost_usd > cap:
        message = (
            f"This conversation passed its cost limit of ${cap:g} "
            "(c.AssistantExtension.max_session_cost_usd); the turn was stopped."
        )
        turn.request_stop("cost_limit", events.error("cost_limit", message))
