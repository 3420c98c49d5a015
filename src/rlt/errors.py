"""Error types a user can act on. The CLI prints them as one line, without a traceback."""


class RLTError(ValueError):
    """Bad input: a config field, a data row or file, a model pairing. The message names it."""


class ConfigError(RLTError):
    """A recipe or command-line field has a bad value."""


class DataError(RLTError):
    """A data set, file, column or row is unusable."""


class RewardError(RLTError):
    """The reward cannot be computed (vocabulary mismatch, NaN/inf logits, ...)."""
