"""azmem as a service: a REST API and an MCP server (stdio and streamable HTTP), with API keys.

``create_app()`` builds the ASGI app ``azmem serve`` runs; ``build_mcp()`` the MCP server
``azmem mcp`` runs over stdio. See docs/server.md.
"""

from azmem.server.app import create_app
from azmem.server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, check_bind, is_loopback
from azmem.server.mcp import build_mcp
from azmem.server.principal import Principal

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Principal",
    "ServerConfig",
    "build_mcp",
    "check_bind",
    "create_app",
    "is_loopback",
]
