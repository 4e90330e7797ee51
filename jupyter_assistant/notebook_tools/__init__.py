"""Notebook tools: what the agent does to the session's own notebook (read its cells and
outputs, insert, edit and delete cells). ``cells.py`` holds the operations on a notebook,
``outputs.py`` how outputs are summarized for a model. Where the notebook lives (the open
document or the file) and how a provider's CLI reaches the tools come in later parts."""
