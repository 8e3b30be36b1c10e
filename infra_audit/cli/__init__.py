"""The commands (console scripts): thin, sharing one convention (``convention``)."""
