"""The root fixer: archive a root venv's leftovers (as ``core.venv_artifacts`` proves them) with a manifest, and restore."""
