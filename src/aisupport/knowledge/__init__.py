"""The knowledge base: sources (articles), their chunks, phrasings learned from history, and retrieval."""
