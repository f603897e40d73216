"""Translate mobile CI and app-distribution webhooks into Slack and Microsoft Teams messages."""

__version__ = "0.1.0"
