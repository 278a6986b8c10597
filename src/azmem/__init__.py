"""azmem: long-term memory for AI agents on Azure OpenAI."""

__version__ = "0.1.0"
