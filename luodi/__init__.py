"""luodi (落地): private, OpenAI-compatible LLM serving for the enterprise."""

__version__ = "0.1.0"

__all__ = ["__version__"]
