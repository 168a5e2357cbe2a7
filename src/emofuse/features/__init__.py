"""Embedding extractors that feed the expert heads (voice, face, text)."""
