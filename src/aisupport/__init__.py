"""aisupport: a multi-tenant backend API for AI-assisted customer support."""
