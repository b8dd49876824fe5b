"""swarm-medic's built-in runbooks: one module each, loaded by file (pipeline.registry).

The repository keeps them in its top-level runbooks/; a wheel installs them as the package
swarm_medic.runbooks (pyproject.toml's package-dir), never as a top-level `runbooks`.
"""
