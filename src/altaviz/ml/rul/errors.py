"""Errors of the RUL model family."""

from altaviz.errors import AltavizError


class RulConfigError(AltavizError):
    """A RUL training or scoring setting is not usable."""


class RulDataError(AltavizError):
    """Data given to the RUL model does not fit (too few assets, no failures, wrong shape)."""
