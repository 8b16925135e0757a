"""The customer widget API: visitors, their sessions, conversations, messages, ratings and events."""
