"""Connectors: async access to the storage of execution locations."""
