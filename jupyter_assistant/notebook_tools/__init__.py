"""Notebook tools: what the agent does to the session's own notebook.

- cells.py: the operations on a notebook (read its cells and outputs, insert, edit, delete).
- outputs.py: how outputs are summarized for a model.
- toolbox.py: a tool call (name + JSON arguments) checked and run on a notebook's storage (the
  file, through Jupyter's contents manager).
- capabilities.py: the per-turn capability that authorizes a call, for one notebook.

Still to come (issue 18): the MCP server the CLIs are given, the HTTP route it forwards to, the
open document in the browser, running cells and the kernel's variables.
"""
