"""Launching a run as one process or as a torchrun group (not yet wired into the engine)."""
