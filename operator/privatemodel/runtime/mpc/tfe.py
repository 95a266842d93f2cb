"""The single entry point through which project code imports tf-encrypted:

    from privatemodel.runtime.mpc.tfe import tfe

Importing it loads the project's secure random op (failing loudly if it cannot),
installs it into tf-encrypted, and applies the fixes in tfe_fixes.
"""

import logging

from privatemodel.runtime.mpc import secure_random

# First, so a missing op stops everything before tf-encrypted is ever usable.
_secure_random_ops = secure_random.load()


class _DropInsecureFallbackWarning(logging.Filter):
    """tf-encrypted warns it falls back to insecure randomness; we install our op right after."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "insecure randomness" not in record.getMessage()


_tfe_logger = logging.getLogger("tf_encrypted")
_warning_filter = _DropInsecureFallbackWarning()
_tfe_logger.addFilter(_warning_filter)
try:
    import tf_encrypted
    from tf_encrypted.operations.secure_random import secure_random as _tfe_secure_random
finally:
    _tfe_logger.removeFilter(_warning_filter)

_tfe_secure_random.secure_random_module = _secure_random_ops
if not (_tfe_secure_random.supports_secure_randomness() and _tfe_secure_random.supports_seeded_randomness()):
    raise RuntimeError("tf-encrypted does not report secure randomness after installing the project's op")

from privatemodel.runtime.mpc import tfe_fixes, tfe_layers  # noqa: E402  (import tf-encrypted, so only now)

tfe_fixes.apply_all()
tfe_layers.install()

tfe = tf_encrypted
