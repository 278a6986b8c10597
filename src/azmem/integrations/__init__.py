"""Providers that plug azmem's Azure OpenAI client into other memory libraries.

Each peer has its own sub-package (``azmem.integrations.graphiti``, ``azmem.integrations.mem0``),
installed with its extra (``pip install 'azmem[graphiti]'`` / ``'azmem[mem0]'``). Nothing is
imported here: importing one integration must never require the other peer to be installed.
See docs/integrations.md.
"""
