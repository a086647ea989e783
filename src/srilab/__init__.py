"""srilab: safety science for language models whose generation is not left-to-right."""

from srilab.errors import SrilabError

__version__ = "0.1.0"
__all__ = ["SrilabError", "__version__"]
