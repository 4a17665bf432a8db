"""The version of loopai-builtin, which moves in lockstep with loopai-core."""

__version__ = "0.1.0"
