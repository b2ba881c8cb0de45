"""Test doubles shipped with RoomVerse (a fake OpenAI-compatible server over real HTTP)."""
