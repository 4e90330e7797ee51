"""Notebook tools: what the agent does to the session's own notebook.

- cells.py: the operations on a notebook (read its cells and outputs, insert, edit, delete).
- outputs.py: how outputs are summarized for a model.
- toolbox.py: a tool call (name + JSON arguments) checked and run on a notebook's storage (the
  file, through Jupyter's contents manager).
- capabilities.py: the per-turn capability that authorizes a call, for one notebook.
- mcp_server.py: the tools as the ``notebook`` MCP server (the ``mcp`` SDK), imported on the
  first call only.
- asgi_bridge.py: a tornado request handed to the SDK's streamable-HTTP ASGI application.
- kernels.py: the notebook's kernel (its Jupyter kernel session): run a cell, read variables.
- relay.py: the notebooks open in a browser, whose JupyterLab applies the tools' changes to the
  open document and runs its cells (``GET/POST notebook-requests``).
- shared_document.py: with jupyter-collaboration, the notebook's shared document in its room,
  where the tools' changes and a run's outputs go while someone has the notebook open.
- gateway.py: capabilities issued per turn, each call approved by its turn's policy, served.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..service import AssistantService
    from .gateway import NotebookToolsGateway


def build_gateway(
    serverapp: Any,
    url: str,
    service: AssistantService,
    *,
    output_chars: int,
    image_bytes: int,
    source_chars: int,
    run_timeout: float,
) -> NotebookToolsGateway:
    """The notebook tools of a Jupyter server, for the turns of ``service``."""
    from .cells import CellLimits
    from .gateway import NotebookToolsGateway, TurnApprover
    from .kernels import NotebookKernels
    from .outputs import OutputLimits
    from .relay import BrowserRelay
    from .toolbox import ContentsStorage, NotebookToolbox, ToolLimits

    limits = ToolLimits(
        cells=CellLimits(max_source_chars=source_chars),
        outputs=OutputLimits(max_output_chars=output_chars, max_image_bytes=image_bytes),
        run_timeout_seconds=run_timeout,
    )
    kernels = NotebookKernels(
        serverapp.session_manager, serverapp.kernel_manager, str(serverapp.root_dir)
    )
    storage = ContentsStorage(serverapp.contents_manager)
    shared = None
    if "jupyter_server_ydoc" in serverapp.web_app.settings:  # jupyter-collaboration is loaded
        from .shared_document import SharedDocuments

        shared = SharedDocuments.of_server(serverapp, kernels)
    toolbox = NotebookToolbox(storage, limits, kernels, BrowserRelay(), shared)
    checkpoints = service.runner.checkpoints
    if checkpoints is not None:
        # Undo of the cells a turn (a kernel's too: its grant names it) changes where the
        # notebook is open: they are not in its file, which the checkpoints keep.
        def note(grant: Any, before: str | None, after: str) -> None:
            checkpoints.note_live(grant.session_id, grant.turn_id, before, after)

        toolbox.live_edits = note
    approver = TurnApprover(service.runner.approve_served, str(serverapp.root_dir), storage)
    return NotebookToolsGateway(toolbox, url, approver)
