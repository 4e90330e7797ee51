#!/usr/bin/env python3
"""A small local stand-in for the Gemini API (``generateContent``, ``streamGenerateContent``).

It lets the REAL ``gemini`` CLI run whole turns offline: ``GOOGLE_GEMINI_BASE_URL`` pointing here
plus ``GEMINI_API_KEY``, and ``security.auth.selectedType = "gemini-api-key"`` in the CLI's
``settings.json`` (gemini 0.61.0 otherwise takes a set base URL as the "gateway" auth type and
refuses it: "Invalid auth method selected."). Pass ``-m <model>`` to skip the model router.

Replies are scripted by the newest user text: a plain reply ``Hello from the stand-in. You said:
<text>``; ``RUN_LS`` -> a ``list_directory`` call of ``.``; ``RUN_WRITE`` (or
``RUN_WRITE:<path>``) -> ``write_file`` of ``standin_written.txt`` (of that path); ``RUN_PWD`` /
``RUN_BASH: <cmd>`` -> ``run_shell_command`` (offered only with ``--approval-mode yolo``); on a
function response: ``The tool result is: <output>``; ``RUN_TOOL: <tool> <json arguments>`` -> a
call of that tool of the ``notebook`` MCP server (offered as ``mcp_notebook_<tool>``), or ``The
tool mcp_notebook_<tool> is not offered.``; ``THINK`` -> a thought part first;
``API_ERROR[:status]`` -> that HTTP error with Google's body.
Standard library only.

Fixture use: ``with GeminiStandIn() as api: ...; api.generate_bodies``.
Script use: ``python gemini_standin.py --port 0 [--log FILE] [--delay S]`` (prints ``PORT <n>``).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

try:
    from .standin_http import (
        JSON,
        RecordedRequest,
        Reply,
        StandInServer,
        chunks,
        command_for,
        error_status,
        estimate_tokens,
        own_words,
        serve_main,
        tool_call_for,
    )
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).parent))
    from standin_http import (  # type: ignore[no-redef]
        JSON,
        RecordedRequest,
        Reply,
        StandInServer,
        chunks,
        command_for,
        error_status,
        estimate_tokens,
        own_words,
        serve_main,
        tool_call_for,
    )

THINK_TRIGGER = "THINK"
LS_TRIGGER = "RUN_LS"
WRITE_TRIGGER = "RUN_WRITE"
WRITE_FILE = "standin_written.txt"
MCP_SERVER = "notebook"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def user_text(body: JSON) -> str:
    """The newest user words, without the ``<session_context>``-like blocks put before them."""
    for content in reversed(body.get("contents") or []):
        if not isinstance(content, dict) or content.get("role") != "user":
            continue
        texts = [
            own_words(str(p["text"]))
            for p in content.get("parts") or []
            if isinstance(p, dict) and "text" in p
        ]
        texts = [t for t in texts if t]
        if texts:
            return "\n".join(texts)
    return ""


def _function_response(body: JSON) -> JSON | None:
    """The function response the newest content carries, if it is one."""
    contents = body.get("contents") or []
    if not contents or not isinstance(contents[-1], dict):
        return None
    for part in contents[-1].get("parts") or []:
        if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
            return part["functionResponse"]  # type: ignore[no-any-return]
    return None


def _response_text(response: JSON) -> str:
    payload = response.get("response")
    if isinstance(payload, dict):
        for key in ("output", "error", "llmContent"):
            if key in payload:
                return str(payload[key]).strip()
        return json.dumps(payload)
    return str(payload)


def _usage(body: JSON, parts: list[JSON]) -> JSON:
    prompt, out = estimate_tokens(body.get("contents")), estimate_tokens(parts)
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": out,
        "totalTokenCount": prompt + out,
    }


def _chunk(body: JSON, parts: list[JSON], model: str, finish: bool) -> JSON:
    candidate: JSON = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    chunk: JSON = {"candidates": [candidate], "modelVersion": model, "responseId": uuid.uuid4().hex}
    chunk["usageMetadata"] = _usage(body, parts) if finish else {"promptTokenCount": 1}
    return chunk


def _schema_example(schema: Any) -> Any:
    """A value fitting a JSON schema (the CLI's helpers ask for JSON, e.g. the model router)."""
    if not isinstance(schema, dict):
        return "stand-in"
    kind = str(schema.get("type", "")).lower()
    if kind == "object":
        return {k: _schema_example(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_schema_example(schema.get("items"))]
    if kind in ("integer", "number"):
        return 10
    if kind == "boolean":
        return False
    if schema.get("enum"):
        return schema["enum"][0]
    return "stand-in"


def offered_tool(body: JSON, tool: str) -> str | None:
    """The name under which the request offers the notebook MCP server's ``tool`` (gemini
    0.61.0: ``mcp_<server>_<tool>``)."""
    for group in body.get("tools") or []:
        for declaration in (
            group.get("functionDeclarations") or [] if isinstance(group, dict) else []
        ):
            name = declaration.get("name") if isinstance(declaration, dict) else None
            if name in (f"mcp_{MCP_SERVER}_{tool}", f"mcp__{MCP_SERVER}__{tool}"):
                return str(name)
    return None


def script(body: JSON) -> list[JSON]:
    """The parts of the reply to one request, in the order they stream."""
    response = _function_response(body)
    if response is not None:
        return [{"text": f"The tool result is: {_response_text(response)}"}]
    text = user_text(body)
    wanted = tool_call_for(text)
    if wanted is not None:
        tool, arguments = wanted
        name = offered_tool(body, tool)
        if name is None:
            return [{"text": f"The tool mcp_{MCP_SERVER}_{tool} is not offered."}]
        return [
            {"text": f"I will use {name}."},
            {"functionCall": {"name": name, "args": arguments}},
        ]
    if LS_TRIGGER in text:
        call = {"name": "list_directory", "args": {"dir_path": "."}}
        return [{"text": "I will list the folder."}, {"functionCall": call}]
    if WRITE_TRIGGER in text:
        rest = text.split(WRITE_TRIGGER, 1)[1]
        target = rest[1:].split()[0] if rest.startswith(":") and rest[1:].split() else WRITE_FILE
        args = {"file_path": target, "content": "written by the stand-in\n"}
        call = {"name": "write_file", "args": args}
        return [{"text": f"I will write {target}."}, {"functionCall": call}]
    command = command_for(text)
    if command:
        call = {"name": "run_shell_command", "args": {"command": command, "description": "run"}}
        return [{"text": f"I will run {command}."}, {"functionCall": call}]
    parts: list[JSON] = []
    if THINK_TRIGGER in text:
        parts.append({"text": "The user wants a reply; thinking it over.", "thought": True})
    parts.append({"text": f"Hello from the stand-in. You said: {text}"})
    return parts


class GeminiStandIn(StandInServer):
    """``generate_bodies``: the JSON bodies of every streamed model request."""

    def handle(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0]
        body = request.body if isinstance(request.body, dict) else {}
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        if request.method != "POST" or ":" not in path:
            return self._error(404, f"stand-in: no {request.method} {path}")
        if path.endswith(":countTokens"):
            return Reply(body={"totalTokens": estimate_tokens(body)})
        status = error_status(user_text(body)) if _function_response(body) is None else None
        if status:
            return self._error(status, f"Stand-in: simulated error {status}")
        if path.endswith(":generateContent"):
            config = body.get("generationConfig") or {}
            schema = config.get("responseJsonSchema") or config.get("responseSchema")
            text = json.dumps(_schema_example(schema)) if schema else "Stand-in side reply"
            return Reply(body=_chunk(body, [{"text": text}], model, finish=True))
        if path.endswith(":streamGenerateContent"):
            parts = script(body)
            events: list[tuple[str | None, JSON]] = []
            for part in parts:
                pieces = chunks(part["text"]) if set(part) == {"text"} else [None]
                for piece in pieces:
                    one = {"text": piece} if piece is not None else part
                    events.append((None, _chunk(body, [one], model, finish=False)))
            events.append((None, _chunk(body, [{"text": ""}], model, finish=True)))
            return Reply(sse=events)
        return self._error(404, f"stand-in: no POST {path}")

    @staticmethod
    def _error(status: int, message: str) -> Reply:
        name = STATUS_NAMES.get(status, "UNKNOWN")
        return Reply(
            status=status, body={"error": {"code": status, "message": message, "status": name}}
        )

    @property
    def generate_bodies(self) -> list[JSON]:
        return self.bodies(lambda r: ":streamGenerateContent" in r.path)


if __name__ == "__main__":
    sys.exit(serve_main(GeminiStandIn, __doc__ or "", sys.argv[1:]))
