"""Translate mobile CI and app-distribution webhooks into Slack and Microsoft Teams messages."""

import os

__version__ = "0.1.0"

# The app uses no pydantic plugins, and looking for them reads the entry points of every installed
# distribution when the first model is built: about 3 ms of each cold start with this project's
# virtual environment (more where more is installed). PYDANTIC_DISABLE_PLUGINS set otherwise (""
# loads plugins) is left as it is.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
