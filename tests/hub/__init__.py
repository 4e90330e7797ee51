"""End-to-end tests under a real JupyterHub (`jupyterhub` from PyPI, its proxy from npm)."""
