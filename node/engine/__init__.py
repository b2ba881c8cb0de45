"""LLM engines: OpenAI-compatible clients with failover, a token budget, the embedded engine."""

from node.engine.messages import ChatMessage, Completion, Role

__all__ = ["ChatMessage", "Completion", "Role"]
