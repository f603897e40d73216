"""Translate mobile CI and app-distribution webhooks into Slack and Microsoft Teams messages."""

import os

__version__ = "0.1.0"

# pydantic looks for plugins in the metadata of every installed distribution when it builds its
# first model: about 4 ms of each cold start here, more on Azure's network-mounted package, for
# plugins the app has none of. Set before any model of ours is built; a value already set wins
# (an empty one has pydantic load its plugins again).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
