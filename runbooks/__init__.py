"""swarm-medic's built-in runbooks: one module each, loaded by file (pipeline.registry)."""
