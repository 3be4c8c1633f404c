"""Base exception of the project. Each stage defines its own subclasses next to its code."""


class AltavizError(Exception):
    """An error a user can act on: the message names the object and says what was expected and what was got."""
