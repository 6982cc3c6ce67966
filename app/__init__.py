"""scpln Planning Hub."""

__version__ = "0.1.0"
