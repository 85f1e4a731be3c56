"""The HTTP routers: each translates HTTP to calls of ``serving`` and ``training`` and back."""
