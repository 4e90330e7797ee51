"""The notebook as jupyter-collaboration shares it: the tools work on the room's document.

When the server runs jupyter-collaboration (its server extension, ``jupyter_server_ydoc``) and
someone has the notebook open collaboratively, the notebook lives in a Y document in a room on
the server, and jupyter-collaboration saves that document to the file itself. A tool call then
reads that document and makes its change there, in one transaction, as a collaborator's edit
(an edit changes the source's Y text, so the others' cursors stay where they are), and a run's
outputs are written into the shared cell as they come. The file is not written: a write under
the room would come back as an out-of-band change.

jupyter_server_ydoc and pycrdt are imported only here, on a tool call, and only when the
extension is loaded (``SharedDocuments.of_server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import nbformat

from .cells import ToolError
from .kernels import Execution, NotebookKernels

log = logging.getLogger(__name__)


class SharedDocuments:
    """The rooms of jupyter-collaboration's server extension (``YDocExtension``)."""

    def __init__(self, extension: Any, file_ids: Any, kernels: NotebookKernels | None) -> None:
        self.extension = extension
        self.file_ids = file_ids
        self.kernels = kernels

    @classmethod
    def of_server(cls, serverapp: Any, kernels: NotebookKernels | None) -> SharedDocuments | None:
        """The shared documents of ``serverapp``; None when jupyter-collaboration is not loaded."""
        settings = serverapp.web_app.settings
        extension = settings.get("jupyter_server_ydoc")
        file_ids = settings.get("file_id_manager")
        if extension is None or file_ids is None or not hasattr(extension, "get_document"):
            return None
        return cls(extension, file_ids, kernels)

    async def find(self, path: str) -> SharedNotebook | None:
        """The notebook's shared document if a room holds it (someone has it open)."""
        # No file id, no room: skip get_document, which would index the file.
        if self.file_ids.get_id(path) is None:
            return None
        try:
            document = await self.extension.get_document(
                path=path, content_type="notebook", file_format="json", copy=False
            )
        except Exception as exc:  # a room that failed to start: the file is the next best place
            log.warning("The shared document of %s could not be had: %s", path, exc)
            return None
        if document is None or not hasattr(document, "ycells"):
            return None
        return SharedNotebook(path, document, self)


class SharedNotebook:
    """One notebook's shared document (a jupyter_ydoc ``YNotebook``, not a copy)."""

    def __init__(self, path: str, document: Any, documents: SharedDocuments) -> None:
        self.path = path
        self.document = document
        self.documents = documents

    async def snapshot(self) -> Any:
        """The shared document as an nbformat notebook (ids as in the document)."""
        try:
            content = self.document.get()
            ycells = self.document.ycells
            content["cells"] = [
                {**self.document.get_cell(i), "id": str(ycells[i].get("id"))}
                for i in range(len(ycells))
            ]
            # A notebook older than 4.5 has no ids in its file; its shared cells do.
            content["nbformat"], content["nbformat_minor"] = 4, max(5, content["nbformat_minor"])
            notebook = nbformat.from_dict(content)  # type: ignore[no-untyped-call]
            nbformat.validate(notebook)
        except Exception as exc:  # nbformat's ValidationError, a document not yet loaded
            raise ToolError(f"The shared notebook could not be read: {exc}.") from exc
        return notebook

    async def apply(self, op: dict[str, Any]) -> None:
        """Make ``op`` (insert, edit or delete, as the browser relay gets them) in the shared
        document, in one transaction: the collaborators get it as one change."""
        ydoc, ycells = self.document.ydoc, self.document.ycells
        with ydoc.transaction():
            if op["op"] == "insert":
                cell = json.loads(json.dumps(op["cell"]))  # plain dicts, not NotebookNodes
                ycells.insert(min(op["index"], len(ycells)), self.document.create_ycell(cell))
                return
            position = self._position(op["id"])
            if position is None:
                raise ToolError("The cell was deleted meanwhile in the shared notebook.")
            if op["op"] == "delete":
                del ycells[position]
                return
            ycell = ycells[position]
            _set_text(ycell, "source", op["source"])
            _set_metadata(ycell, op["metadata"])
            if op["clear_outputs"]:
                _put_outputs(ycell, [])
                ycell["execution_count"] = None

    def _position(self, cell_id: str) -> int | None:
        for position, ycell in enumerate(self.document.ycells):
            if ycell.get("id") == cell_id:
                return position
        return None

    def _write(self, cell_id: str, outputs: list[Any], count: Any, state: str) -> None:
        """A run's outputs so far into its shared cell (gone: nothing to write)."""
        position = self._position(cell_id)
        if position is None:
            return
        ycell = self.document.ycells[position]
        try:
            with self.document.ydoc.transaction():
                _put_outputs(ycell, outputs)
                if ycell.get("execution_count") != count:
                    ycell["execution_count"] = count
                if ycell.get("execution_state") != state:
                    ycell["execution_state"] = state
        except Exception as exc:  # the run goes on; its outputs are in the tool's answer
            log.warning("A run's outputs could not be shown in %s: %s", self.path, exc)

    async def run(
        self, execution: Execution, code: str, kernelspec: str | None, timeout: float
    ) -> asyncio.Task[bool]:
        """Run the cell in the notebook's kernel; its outputs show in the shared cell as they
        come. The task returned ends with the run: True when its outputs are in the shared
        document, False when the room closed meanwhile (the caller keeps them in the file)."""
        kernels = self.documents.kernels
        if kernels is None:
            raise ToolError("This server runs no kernels for the notebook tools.")
        kernel = await kernels.kernel(self.path, kernelspec)
        cell_id = execution.cell_id
        # As a user's run: the old outputs go, the prompt shows the cell busy.
        self._write(cell_id, [], None, "busy")
        execution.on_change = lambda run: self._write(
            cell_id, run.outputs, run.execution_count, "busy"
        )
        try:
            follow = await kernels.run(kernel, code, execution, timeout)
        except BaseException:
            execution.on_change = None
            self._write(cell_id, [], None, "idle")
            raise
        return asyncio.create_task(self._finish(execution, follow))

    async def _finish(self, execution: Execution, follow: asyncio.Task[None]) -> bool:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follow
        execution.on_change = None
        current = await self.documents.find(self.path)
        if current is None or current.document is not self.document:
            return False  # the room closed: its document was saved without this run's end
        self._write(execution.cell_id, execution.outputs, execution.execution_count, "idle")
        return True


def _set_text(ymap: Any, key: str, value: str) -> None:
    """Change the Y text ``ymap[key]`` to ``value`` by replacing only the part that differs."""
    from pycrdt import Text

    text = ymap.get(key)
    if not isinstance(text, Text):
        ymap[key] = Text(value)
        return
    old = str(text)
    if old == value:
        return
    start = 0
    limit = min(len(old), len(value))
    while start < limit and old[start] == value[start]:
        start += 1
    end = 0
    while end < limit - start and old[-1 - end] == value[-1 - end]:
        end += 1
    # Y text positions count UTF-8 bytes.
    first = len(old[:start].encode())
    removed = len(old[start : len(old) - end].encode())
    if removed:
        del text[first : first + removed]
    added = value[start : len(value) - end]
    if added:
        text.insert(first, added)


def _set_metadata(ycell: Any, metadata: dict[str, Any]) -> None:
    from pycrdt import Map

    ymetadata = ycell.get("metadata")
    if not isinstance(ymetadata, Map):
        ycell["metadata"] = Map({**(ycell.get("metadata") or {}), **metadata})
        return
    for key, value in metadata.items():
        ymetadata[key] = value


def _put_outputs(ycell: Any, outputs: list[Any]) -> None:
    """Make the cell's Y outputs ``outputs``, keeping those unchanged and appending to a stream
    that grew (jupyter_ydoc's layout: a Y map each, a stream's text a Y text)."""
    from pycrdt import Array, Map, Text

    youtputs = ycell.get("outputs")
    if not isinstance(youtputs, Array):
        youtputs = ycell["outputs"] = Array()
    plain: list[dict[str, Any]] = json.loads(json.dumps(outputs))
    keep = 0
    while keep < min(len(youtputs), len(plain)) and youtputs[keep].to_py() == plain[keep]:
        keep += 1
    if keep < min(len(youtputs), len(plain)):
        old, new = youtputs[keep], plain[keep]
        text = old.get("text") if isinstance(old, Map) else None
        grown = (
            new.get("output_type") == "stream"
            and isinstance(text, Text)
            and {**old.to_py(), "text": new["text"]} == new
            and new["text"].startswith(str(text))
        )
        if grown:
            text += new["text"][len(str(text)) :]
            keep += 1
    if keep < len(youtputs):
        del youtputs[keep:]
    for output in plain[keep:]:
        if output.get("output_type") == "stream":
            output["text"] = Text(_joined(output.get("text", "")))
        youtputs.append(Map(output))


def _joined(text: Any) -> str:
    return "".join(text) if isinstance(text, list) else str(text)
