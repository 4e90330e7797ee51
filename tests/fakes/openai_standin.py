#!/usr/bin/env python3
"""A small local stand-in for the OpenAI Responses API (``POST /v1/responses``, streamed).

It lets the REAL ``codex`` CLI run whole turns offline, through a custom model provider::

    codex exec --json -m gpt-5-codex \\
      -c model_provider=standin \\
      -c 'model_providers.standin={name="standin",base_url="http://127.0.0.1:<port>/v1",
          env_key="STANDIN_API_KEY",wire_api="responses"}' -

(``OPENAI_BASE_URL`` is not honoured by codex 0.171.0.) Replies are scripted by the newest user
text of a request: a plain reply ``Hello from the stand-in. You said: <text>``; ``RUN_PWD`` /
``RUN_BASH: <cmd>`` -> an ``exec_command`` function call, then, on its output, ``The working
directory is: <out>`` / ``The command output is: <out>``; ``THINK`` -> a reasoning summary first;
``RUN_PATCH`` -> an ``apply_patch`` call that adds ``standin_patch.txt`` (``-m gpt-5.5`` offers
that tool); ``RUN_TOOL: <tool> <json arguments>`` -> a call of that tool of the ``notebook`` MCP
server (codex 0.171.0 offers an MCP server's tools as a ``namespace`` tool ``mcp__<server>``; the
call names the namespace), then ``The notebook tool result is: <out>``, or ``The tool
mcp__notebook__<tool> is not offered.``; ``API_ERROR[:status]`` -> that HTTP error with OpenAI's
error body.
Standard library only.

Fixture use: ``with OpenAIStandIn() as api: ...; api.response_bodies``.
Script use: ``python openai_standin.py --port 0 [--log FILE] [--delay S]`` (prints ``PORT <n>``).
"""

from __future__ import annotations

import json
import sys
import time
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
PATCH_TRIGGER = "RUN_PATCH"  # an apply_patch call adding PATCH_FILE (models that have the tool)
PATCH_FILE = "standin_patch.txt"
MCP_SERVER = "notebook"
ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded", 500: "server_error"}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _text_of(item: JSON) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(
        str(c.get("text", ""))
        for c in content
        if isinstance(c, dict) and c.get("type") in ("input_text", "output_text")
    )


def user_text(body: JSON) -> str:
    """The newest user words: the CLI's own injected blocks (``<environment_context>`` and such,
    which start with ``<``) are skipped."""
    for item in reversed(body.get("input") or []):
        if isinstance(item, dict) and item.get("type") == "message" and item.get("role") == "user":
            text = own_words(_text_of(item))
            if text:
                return text
    return ""


def _tool_output(item: JSON) -> str:
    output = item.get("output")
    if isinstance(output, list):
        output = "".join(str(o.get("text", "")) for o in output if isinstance(o, dict))
    text = str(output or "")
    # exec_command (and MCP) results are a small report; the output follows "Output:".
    if "\nOutput:" in text:
        text = text.split("\nOutput:", 1)[1]
    return text.strip()


def _call_of(body: JSON, call_id: Any) -> JSON:
    for item in body.get("input") or []:
        if (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("call_id") == call_id
        ):
            return item
    return {}


def offered_tool(body: JSON, tool: str) -> tuple[str | None, str] | None:
    """(namespace, name) under which the request offers the notebook MCP server's ``tool``."""
    prefix = f"mcp__{MCP_SERVER}"
    for offered in body.get("tools") or []:
        if not isinstance(offered, dict):
            continue
        if offered.get("type") == "namespace" and str(offered.get("name")).startswith(prefix):
            for inner in offered.get("tools") or []:
                if isinstance(inner, dict) and inner.get("name") == tool:
                    return str(offered["name"]), tool
        if offered.get("name") in (f"{prefix}__{tool}", f"{prefix}.{tool}"):
            return None, str(offered["name"])
    return None


def _command_of_call(body: JSON, call_id: Any) -> str:
    for item in body.get("input") or []:
        if (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("call_id") == call_id
        ):
            try:
                return str(json.loads(item.get("arguments") or "{}").get("cmd", ""))
            except ValueError:
                return ""
    return ""


class ResponseBuilder:
    """The SSE events of one streamed response, in the order the real API sends them."""

    def __init__(self, body: JSON) -> None:
        self.body = body
        self.id = _id("resp")
        self.output: list[JSON] = []
        self.events: list[tuple[str | None, JSON]] = []
        head = {
            "id": self.id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": body.get("model", "gpt-standin"),
            "output": [],
        }
        self._emit("response.created", {"response": head})
        self._emit("response.in_progress", {"response": head})

    def _emit(self, kind: str, data: JSON) -> None:
        self.events.append((kind, {"type": kind, **data}))

    def reasoning(self, text: str) -> None:
        index, item_id = len(self.output), _id("rs")
        self._emit(
            "response.output_item.added",
            {"output_index": index, "item": {"id": item_id, "type": "reasoning", "summary": []}},
        )
        where = {"item_id": item_id, "output_index": index, "summary_index": 0}
        self._emit(
            "response.reasoning_summary_part.added",
            {**where, "part": {"type": "summary_text", "text": ""}},
        )
        for piece in chunks(text):
            self._emit("response.reasoning_summary_text.delta", {**where, "delta": piece})
        self._emit("response.reasoning_summary_text.done", {**where, "text": text})
        self._emit(
            "response.reasoning_summary_part.done",
            {**where, "part": {"type": "summary_text", "text": text}},
        )
        item = {
            "id": item_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}],
        }
        self._done(index, item)

    def message(self, text: str) -> None:
        index, item_id = len(self.output), _id("msg")
        added = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._emit("response.output_item.added", {"output_index": index, "item": added})
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        self._emit("response.content_part.added", {**where, "part": part})
        for piece in chunks(text):
            self._emit("response.output_text.delta", {**where, "delta": piece})
        self._emit("response.output_text.done", {**where, "text": text})
        self._emit("response.content_part.done", {**where, "part": {**part, "text": text}})
        item = dict(added, status="completed", content=[{**part, "text": text}])
        self._done(index, item)

    def function_call(self, name: str, arguments: JSON, namespace: str | None = None) -> None:
        index, item_id, call_id = len(self.output), _id("fc"), _id("call")
        raw = json.dumps(arguments)
        added = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": name,
        }
        if namespace:
            added["namespace"] = namespace
        self._emit("response.output_item.added", {"output_index": index, "item": added})
        where = {"item_id": item_id, "output_index": index}
        for piece in chunks(raw, 16):
            self._emit("response.function_call_arguments.delta", {**where, "delta": piece})
        self._emit("response.function_call_arguments.done", {**where, "arguments": raw})
        self._done(index, dict(added, status="completed", arguments=raw))

    def custom_tool_call(self, name: str, text: str) -> None:
        index, item_id, call_id = len(self.output), _id("ctc"), _id("call")
        added = {
            "id": item_id,
            "type": "custom_tool_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "input": "",
        }
        self._emit("response.output_item.added", {"output_index": index, "item": added})
        where = {"item_id": item_id, "output_index": index}
        for piece in chunks(text, 24):
            self._emit("response.custom_tool_call_input.delta", {**where, "delta": piece})
        self._emit("response.custom_tool_call_input.done", {**where, "input": text})
        self._done(index, dict(added, status="completed", input=text))

    def _done(self, index: int, item: JSON) -> None:
        self.output.append(item)
        self._emit("response.output_item.done", {"output_index": index, "item": item})

    def complete(self) -> list[tuple[str | None, JSON]]:
        input_tokens = estimate_tokens(self.body.get("input"))
        output_tokens = estimate_tokens(self.output)
        response = {
            "id": self.id,
            "object": "response",
            "status": "completed",
            "model": self.body.get("model", "gpt-standin"),
            "output": self.output,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }
        self._emit("response.completed", {"response": response})
        return self.events


def script(body: JSON) -> Reply:
    """Decide the reply to one ``POST /v1/responses`` body."""
    items = [i for i in body.get("input") or [] if isinstance(i, dict)]
    text = user_text(body)
    status = error_status(text)
    last = items[-1] if items else {}
    if status and last.get("type") == "message":
        kind = "invalid_request_error" if status < 500 else "server_error"
        error = {
            "message": f"Stand-in: simulated error {status}",
            "type": kind,
            "param": None,
            "code": ERROR_CODES.get(status),
        }
        return Reply(status=status, body={"error": error})
    builder = ResponseBuilder(body)
    if last.get("type") == "custom_tool_call_output":
        builder.message(f"The patch result is: {_tool_output(last)}")
        return Reply(sse=builder.complete())
    if last.get("type") == "function_call_output":
        out = _tool_output(last)
        call = _call_of(body, last.get("call_id"))
        if call.get("namespace") or str(call.get("name", "")).startswith("mcp__"):
            builder.message(f"The notebook tool result is: {out}")
        elif _command_of_call(body, last.get("call_id")) == "pwd":
            builder.message(f"The working directory is: {out}")
        else:
            builder.message(f"The command output is: {out}")
        return Reply(sse=builder.complete())
    if PATCH_TRIGGER in text:
        patch = (
            f"*** Begin Patch\n*** Add File: {PATCH_FILE}\n+patched by the stand-in\n"
            "*** End Patch\n"
        )
        builder.message(f"I will create {PATCH_FILE}.")
        builder.custom_tool_call("apply_patch", patch)
        return Reply(sse=builder.complete())
    wanted = tool_call_for(text)
    if wanted is not None:
        tool, arguments = wanted
        found = offered_tool(body, tool)
        if found is None:
            builder.message(f"The tool mcp__{MCP_SERVER}__{tool} is not offered.")
        else:
            namespace, name = found
            builder.message(f"I will use mcp__{MCP_SERVER}__{tool}.")
            builder.function_call(name, arguments, namespace)
        return Reply(sse=builder.complete())
    command = command_for(text)
    if command:
        builder.message(f"I will run {command}.")
        builder.function_call("exec_command", {"cmd": command, "yield_time_ms": 30000})
        return Reply(sse=builder.complete())
    if THINK_TRIGGER in text:
        builder.reasoning("The user wants a reply; thinking it over.")
    builder.message(f"Hello from the stand-in. You said: {text}")
    return Reply(sse=builder.complete())


class OpenAIStandIn(StandInServer):
    """``response_bodies``: the JSON bodies of every ``POST /v1/responses``."""

    def handle(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0]
        if request.method == "GET" and path.endswith("/models"):
            model = {"id": "gpt-5-codex", "object": "model", "created": 0, "owned_by": "standin"}
            return Reply(body={"object": "list", "data": [model]})
        is_responses = request.method == "POST" and path.endswith("/responses")
        if is_responses and isinstance(request.body, dict):
            return script(request.body)
        error = {"message": f"stand-in: no {request.method} {path}", "type": "not_found"}
        return Reply(status=404, body={"error": error})

    @property
    def response_bodies(self) -> list[JSON]:
        return self.bodies(lambda r: r.path.split("?", 1)[0].endswith("/responses"))


if __name__ == "__main__":
    sys.exit(serve_main(OpenAIStandIn, __doc__ or "", sys.argv[1:]))
